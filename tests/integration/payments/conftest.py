"""Fixtures: a merchant with an open checkout, and a way to post provider webhooks."""

import pytest

from tests.factories import checkout_payload


@pytest.fixture
def open_checkout(client, merchant):
    response = client.post(
        "/v1/ticket-checkouts",
        json=checkout_payload(),
        headers={**merchant.auth, "Idempotency-Key": "k"},
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()["checkoutId"]


@pytest.fixture
def post_webhook(client):
    def _post(body, headers, provider="sandbox", request_id=None):
        extra = {"X-Request-ID": request_id} if request_id else {}
        return client.post(
            f"/v1/providers/{provider}/webhooks", data=body, headers={**headers, **extra}
        )

    return _post
