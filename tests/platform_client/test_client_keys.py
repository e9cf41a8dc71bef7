"""What the client puts in Idempotency-Key and X-Request-ID, what it refuses before sending,
and how it tells a replayed create from a new one (against the scripted stand-in)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest

from platform_client.client import PaymentServiceClient
from shared_contracts.checkouts import CheckoutStatus
from tests.platform_client.servers import Answer, Script
from tests.platform_client.test_client import API_KEY, checkout_request


@pytest.fixture
def client(service: Script) -> Iterator[PaymentServiceClient]:
    with PaymentServiceClient(service.url, API_KEY, backoff_factor=0.01) as client:
        yield client


def test_a_replayed_create_says_so(service: Script, client: PaymentServiceClient) -> None:
    service.answers.append(Answer(201))
    service.answers.append(Answer(201, headers={"Idempotent-Replayed": "true"}))

    first = client.create_checkout(checkout_request())
    again = client.create_checkout(checkout_request())

    assert first.replayed is False
    assert again.replayed is True and again.status is CheckoutStatus.OPEN
    assert again == first  # the same checkout: ``replayed`` is about the answer
    assert client.get_checkout("chk_1").replayed is False


def test_a_non_ascii_reservation_id_gets_a_stable_ascii_key(
    service: Script, client: PaymentServiceClient
) -> None:
    client.create_checkout(checkout_request(reservation_id="예약_1"))
    client.create_checkout(checkout_request(reservation_id="예약_1"))

    digest = hashlib.sha256("예약_1".encode()).hexdigest()
    keys = [seen.headers["Idempotency-Key"] for seen in service.seen]
    assert keys == [f"reservation-sha256:{digest}"] * 2


@pytest.mark.parametrize(
    "key",
    ["", "예약:1", "retry\n2", " retry-2", "k" * 256],
    ids=["empty", "non-ascii", "line break", "leading space", "too long"],
)
def test_a_malformed_idempotency_key_is_refused_before_sending(
    service: Script, client: PaymentServiceClient, key: str
) -> None:
    with pytest.raises(ValueError, match="idempotency_key"):
        client.create_checkout(checkout_request(), idempotency_key=key)
    assert service.seen == []


def test_the_longest_idempotency_key_is_sent(service: Script, client: PaymentServiceClient) -> None:
    client.create_checkout(checkout_request(), idempotency_key="k" * 255)
    assert service.seen[0].headers["Idempotency-Key"] == "k" * 255


@pytest.mark.parametrize(
    "request_id",
    ["req 1\n", "", "req/1", "요청_1", "r" * 129],
    ids=["line break", "empty", "slash", "non-ascii", "too long"],
)
def test_a_malformed_request_id_is_refused_before_sending(
    service: Script, client: PaymentServiceClient, request_id: str
) -> None:
    with pytest.raises(ValueError, match="request_id"):
        client.create_checkout(checkout_request(), request_id=request_id)
    with pytest.raises(ValueError, match="request_id"):
        client.get_checkout("chk_1", request_id=request_id)
    assert service.seen == []


def test_a_request_id_of_the_contract_format_is_sent(
    service: Script, client: PaymentServiceClient
) -> None:
    client.get_checkout("chk_1", request_id="req.A-9:_" + "x" * 119)
    assert service.seen[0].headers["X-Request-Id"] == "req.A-9:_" + "x" * 119
