"""Fixtures for the checkout API: a second merchant and a create helper."""

import itertools

import pytest

from tests.factories import checkout_payload, make_merchant

_keys = itertools.count()


@pytest.fixture
def other_merchant(db):
    return make_merchant(db, name="Other platform", origins=("https://other.example",))


@pytest.fixture
def create(client, merchant):
    """POST a checkout; returns the response. `key=None` sends no Idempotency-Key."""

    def _create(payload=None, *, key="default", creds=None, **overrides):
        headers = dict((creds or merchant).auth)
        if key is not None:
            headers["Idempotency-Key"] = f"key-{next(_keys)}" if key == "default" else key
        body = payload if payload is not None else checkout_payload(**overrides)
        return client.post("/v1/ticket-checkouts", json=body, headers=headers)

    return _create
