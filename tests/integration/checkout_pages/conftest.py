"""Fixtures for the hosted pages: a created checkout (its id, page path and token), a way to
put it in any state, and the provider's session calls scripted to fail."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import update

from payment_service.checkouts.models import Checkout
from payment_service.db import Database
from tests.factories import checkout_payload, make_merchant

MERCHANT = "Han River Runs"


@dataclass(frozen=True)
class Created:
    checkout_id: str
    checkout_url: str
    token: str

    def path(self, public_url: str = "http://pay.test") -> str:
        return self.checkout_url.removeprefix(public_url)


def create_checkout(client: Any, db: Database) -> Created:
    creds = make_merchant(db, name=MERCHANT)
    response = client.post("/v1/ticket-checkouts", json=checkout_payload(),
                           headers={**creds.auth, "Idempotency-Key": "k"})  # fmt: skip
    body = response.get_json()
    return Created(body["checkoutId"], body["checkoutUrl"], body["checkoutUrl"].split("t=")[1])


@pytest.fixture
def created(client: Any, db: Database) -> Created:
    return create_checkout(client, db)


@pytest.fixture
def set_checkout(db: Database) -> Callable[..., None]:
    def set_values(checkout_id: str, **values: Any) -> None:
        with db.transaction() as session:
            session.execute(update(Checkout).where(Checkout.id == checkout_id).values(**values))

    return set_values


@pytest.fixture
def provider_raises(app: Any, monkeypatch: pytest.MonkeyPatch) -> Callable[[Exception], None]:
    """Make the sandbox adapter's create_session raise `error` (no HTTP call at all)."""

    def script(error: Exception) -> None:
        def create_session(_request: Any) -> Any:
            raise error

        adapter = app.extensions["payment_providers"].get("sandbox")
        monkeypatch.setattr(adapter, "create_session", create_session)

    return script
