"""PaymentServiceClient against the real payment service app over HTTP (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask

from platform_client.checkouts import CheckoutRequest, Customer
from platform_client.client import PaymentServiceClient
from platform_client.errors import (
    CheckoutExists,
    NotFound,
    Unauthenticated,
    UrlNotAllowed,
    ValidationFailed,
)
from shared_contracts.checkouts import CheckoutStatus
from tests.factories import PLATFORM_ORIGIN, MerchantCredentials
from tests.platform_client.servers import serving


def checkout_request(reservation_id: str = "res_123", **overrides: object) -> CheckoutRequest:
    fields: dict[str, object] = {
        "reservation_id": reservation_id, "event_id": "evt_42", "tier_id": "tier_7",
        "order_name": "Seoul Marathon 2027 - Full course", "amount": 30000, "currency": "KRW",
        "customer": Customer(platform_user_id="u_9", email="kim@example.com"),
        "success_url": f"{PLATFORM_ORIGIN}/events/evt_42/register?payment=success",
        "cancel_url": f"{PLATFORM_ORIGIN}/events/evt_42/register?payment=cancel",
        "callback_url": f"{PLATFORM_ORIGIN}/hooks/ticket-payments",
        "metadata": {"seat": "A1"},
    }  # fmt: skip
    fields.update(overrides)
    return CheckoutRequest(**fields)  # type: ignore[arg-type]


@pytest.fixture
def service_url(app: Flask) -> Iterator[str]:
    with serving(app) as url:
        yield url


@pytest.fixture
def client(service_url: str, merchant: MerchantCredentials) -> Iterator[PaymentServiceClient]:
    with PaymentServiceClient(service_url, merchant.api_key, backoff_factor=0.01) as client:
        yield client


def test_create_get_find_cancel_round_trip(client: PaymentServiceClient) -> None:
    created = client.create_checkout(checkout_request())
    assert created.status is CheckoutStatus.OPEN
    assert created.reservation_id == "res_123" and created.amount == 30000
    assert created.checkout_url.startswith("http://pay.test/")
    assert created.metadata == {"seat": "A1"} and created.expires_at > created.created_at

    assert client.create_checkout(checkout_request()) == created  # same key and body: replayed
    assert client.get_checkout(created.checkout_id) == created
    assert client.find_checkouts("res_123") == [created]
    assert client.find_checkouts("res_unknown") == []

    with pytest.raises(CheckoutExists) as raised:
        client.create_checkout(checkout_request(), idempotency_key="another-key")
    assert raised.value.checkout_id == created.checkout_id
    assert raised.value.request_id

    canceled = client.cancel_checkout(created.checkout_id)
    assert canceled.status is CheckoutStatus.CANCELED
    assert client.cancel_checkout(created.checkout_id).status is CheckoutStatus.CANCELED
    second = client.create_checkout(checkout_request(), idempotency_key="after-cancel")
    assert second.checkout_id != created.checkout_id


def test_errors_from_the_real_api(client: PaymentServiceClient, service_url: str) -> None:
    with pytest.raises(ValidationFailed) as raised:
        client.create_checkout(checkout_request("res_bad", amount=0, currency="XXX"))
    assert set(raised.value.details) >= {"amount", "currency"}

    with pytest.raises(UrlNotAllowed):
        client.create_checkout(
            checkout_request("res_url", callback_url="https://evil.example/hooks")
        )
    with pytest.raises(NotFound):
        client.get_checkout("chk_does_not_exist")
    with (
        PaymentServiceClient(service_url, "pk_wrong_key") as stranger,
        pytest.raises(Unauthenticated),
    ):
        stranger.find_checkouts("res_123")


def test_a_replay_after_a_cancel_is_marked_and_get_checkout_tells_the_truth(
    client: PaymentServiceClient,
) -> None:
    created = client.create_checkout(checkout_request("res_replay"))
    client.cancel_checkout(created.checkout_id)

    replayed = client.create_checkout(checkout_request("res_replay"))  # the default key again

    assert created.replayed is False
    assert replayed.replayed is True
    assert replayed.status is CheckoutStatus.OPEN  # the first answer, not the current state
    assert client.get_checkout(replayed.checkout_id).status is CheckoutStatus.CANCELED
    second = client.create_checkout(
        checkout_request("res_replay"), idempotency_key="reservation:res_replay:2"
    )
    assert second.replayed is False and second.checkout_id != created.checkout_id


def test_a_non_ascii_reservation_id_is_created_and_replayed(client: PaymentServiceClient) -> None:
    created = client.create_checkout(checkout_request("예약_1"))
    again = client.create_checkout(checkout_request("예약_1"))

    assert created.reservation_id == "예약_1" and created.status is CheckoutStatus.OPEN
    assert again.replayed is True and again.checkout_id == created.checkout_id
