"""PaymentServiceClient against a scripted stand-in over real HTTP: mapping, retries, timeouts."""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from platform_client.checkouts import Checkout, CheckoutRequest, Customer
from platform_client.client import PaymentServiceClient
from platform_client.errors import (
    CheckoutExists,
    IdempotencyKeyReused,
    InvalidState,
    NotFound,
    PaymentServiceError,
    PaymentServiceUnavailable,
    RateLimited,
    Unauthenticated,
    UnexpectedResponse,
    UrlNotAllowed,
    ValidationFailed,
)
from shared_contracts.checkouts import CheckoutStatus, PaymentMethodFamily
from tests.platform_client.servers import CHECKOUT, Answer, Script, envelope
from tests.receivers import read_http_request

API_KEY = "pk_live_very_secret_0123456789"


def checkout_request(**overrides: object) -> CheckoutRequest:
    fields: dict[str, object] = {
        "reservation_id": "res_123", "event_id": "evt_42", "tier_id": "tier_7",
        "order_name": "Seoul Marathon 2027 - Full course", "amount": 30000, "currency": "KRW",
        "success_url": "https://platform.example/ok", "cancel_url": "https://platform.example/no",
        "callback_url": "https://platform.example/hooks",
    }  # fmt: skip
    fields.update(overrides)
    return CheckoutRequest(**fields)  # type: ignore[arg-type]


@pytest.fixture
def client(service: Script) -> Iterator[PaymentServiceClient]:
    with PaymentServiceClient(
        service.url, API_KEY, backoff_factor=0.01, connect_timeout=1, read_timeout=2
    ) as client:
        yield client


def test_create_sends_the_contract_request_and_returns_a_typed_checkout(
    service: Script, client: PaymentServiceClient
) -> None:
    expires = datetime(2026, 11, 22, 10, 10, tzinfo=UTC)
    checkout = client.create_checkout(
        checkout_request(
            customer=Customer(platform_user_id="u_9", email="kim@example.com"),
            payment_method_family=PaymentMethodFamily.CARD,
            expires_at=expires,
            metadata={"seat": "A1"},
        ),
        request_id="req_from_platform",
    )

    assert isinstance(checkout, Checkout)
    assert checkout.checkout_id == "chk_1"
    assert checkout.status is CheckoutStatus.OPEN
    assert checkout.amount == 30000 and checkout.currency == "KRW"
    assert checkout.expires_at == datetime(2026, 11, 22, 10, 15, tzinfo=UTC)
    assert checkout.metadata == {"seat": "A1"} and checkout.payment is None
    [sent] = service.seen
    assert (sent.method, sent.path) == ("POST", "/v1/ticket-checkouts")
    assert sent.headers["Authorization"] == f"Bearer {API_KEY}"
    assert sent.headers["Idempotency-Key"] == "reservation:res_123"
    assert sent.headers["X-Request-Id"] == "req_from_platform"
    body = json.loads(sent.body)
    assert body["reservationId"] == "res_123" and body["amount"] == 30000
    assert body["customer"] == {"platformUserId": "u_9", "email": "kim@example.com"}
    assert body["paymentMethodFamily"] == "card"
    assert datetime.fromisoformat(body["expiresAt"]) == expires
    assert body["metadata"] == {"seat": "A1"}
    assert "provider" not in body  # unset optional fields are left out, not sent as null


def test_an_explicit_idempotency_key_is_used(service: Script, client: PaymentServiceClient) -> None:
    client.create_checkout(checkout_request(), idempotency_key="retry-2")
    assert service.seen[0].headers["Idempotency-Key"] == "retry-2"


def test_a_paid_checkout_carries_its_payment_and_extra_fields_are_ignored(
    service: Script, client: PaymentServiceClient
) -> None:
    paid = {
        **CHECKOUT, "status": "paid", "paidAt": "2026-11-22T10:03:12Z", "someNewField": 1,
        "payment": {"paymentId": "pay_1", "provider": "sandbox", "txId": None,
                    "paidAt": "2026-11-22T10:03:12Z", "method": "card"},
    }  # fmt: skip
    service.answers.append(Answer(200, json.dumps(paid).encode()))

    checkout = client.get_checkout("chk_1")

    assert service.seen[0].path == "/v1/ticket-checkouts/chk_1"
    assert checkout.status is CheckoutStatus.PAID
    assert checkout.payment is not None and checkout.payment.payment_id == "pay_1"
    assert checkout.payment.paid_at == datetime(2026, 11, 22, 10, 3, 12, tzinfo=UTC)


def test_find_and_cancel(service: Script, client: PaymentServiceClient) -> None:
    service.answers.append(Answer(200, json.dumps({"data": [CHECKOUT, CHECKOUT]}).encode()))
    service.answers.append(Answer(200, json.dumps({**CHECKOUT, "status": "canceled"}).encode()))

    assert [c.checkout_id for c in client.find_checkouts("res 1/2")] == ["chk_1", "chk_1"]
    assert client.cancel_checkout("chk/../x").status is CheckoutStatus.CANCELED

    assert service.seen[0].query == {"reservationId": "res 1/2"}
    assert (service.seen[1].method, service.seen[1].path) == (
        "POST", "/v1/ticket-checkouts/chk%2F..%2Fx/cancel",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (401, "unauthenticated", Unauthenticated),
        (404, "not_found", NotFound),
        (409, "invalid_state", InvalidState),
        (422, "url_not_allowed", UrlNotAllowed),
        (422, "idempotency_key_reused", IdempotencyKeyReused),
        (400, "malformed_json", PaymentServiceError),
        (409, "a_code_from_the_future", PaymentServiceError),
        (500, "internal_error", PaymentServiceUnavailable),
    ],
)
def test_error_envelopes_become_typed_exceptions(
    service: Script,
    client: PaymentServiceClient,
    status: int,
    code: str,
    expected: type[PaymentServiceError],
) -> None:
    service.answers.append(Answer(status, envelope(code, "told you")))

    with pytest.raises(expected) as raised:
        client.get_checkout("chk_1")

    assert type(raised.value) is expected
    assert (raised.value.code, raised.value.message) == (code, "told you")
    assert (raised.value.status, raised.value.request_id) == (status, "req_srv")


def test_checkout_exists_carries_the_existing_checkout_id(
    service: Script, client: PaymentServiceClient
) -> None:
    service.answers.append(
        Answer(409, envelope("checkout_exists", details={"checkoutId": "chk_0"}))
    )
    with pytest.raises(CheckoutExists) as raised:
        client.create_checkout(checkout_request())
    assert raised.value.checkout_id == "chk_0"


def test_validation_failed_carries_the_field_messages(
    service: Script, client: PaymentServiceClient
) -> None:
    details = {"amount": ["Must be between 1 and 99999999."], "customer": {"email": ["Bad."]}}
    service.answers.append(Answer(422, envelope("validation_error", details=details)))
    with pytest.raises(ValidationFailed) as raised:
        client.create_checkout(checkout_request(amount=0))
    assert raised.value.details == details


def test_rate_limited_keeps_the_retry_after_hint(
    service: Script, client: PaymentServiceClient
) -> None:
    service.answers.append(Answer(429, envelope("rate_limited"), headers={"Retry-After": "7"}))
    with pytest.raises(RateLimited) as raised:
        client.get_checkout("chk_1")
    assert raised.value.retry_after == 7
    assert len(service.seen) == 1  # 429 is not retried by the client


def test_503_twice_then_201_is_retried_with_the_same_key_and_body(
    service: Script, client: PaymentServiceClient
) -> None:
    service.answers += [Answer(503, envelope("provider_unavailable")), Answer(502, b"<html>")]

    checkout = client.create_checkout(checkout_request())

    assert checkout.checkout_id == "chk_1"
    assert len(service.seen) == 3
    assert {s.headers["Idempotency-Key"] for s in service.seen} == {"reservation:res_123"}
    assert len({s.body for s in service.seen}) == 1


def test_gateway_errors_after_the_last_retry_are_unavailable(service: Script) -> None:
    service.answers += [Answer(504, b"gateway timeout", "text/plain")] * 3
    with (
        PaymentServiceClient(service.url, API_KEY, retries=2, backoff_factor=0.01) as client,
        pytest.raises(PaymentServiceUnavailable) as raised,
    ):
        client.get_checkout("chk_1")
    assert raised.value.status == 504
    assert len(service.seen) == 3


def test_retry_after_is_respected_but_capped(service: Script, client: PaymentServiceClient) -> None:
    service.answers.append(
        Answer(503, envelope("provider_unavailable"), headers={"Retry-After": "1"})
    )
    started = time.monotonic()
    client.get_checkout("chk_1")
    assert time.monotonic() - started >= 0.9

    service.answers.append(
        Answer(503, envelope("provider_unavailable"), headers={"Retry-After": "3600"})
    )
    with PaymentServiceClient(service.url, API_KEY, max_retry_after=0) as impatient:
        started = time.monotonic()
        impatient.get_checkout("chk_1")
    assert time.monotonic() - started < 5


def test_a_non_json_500_is_unavailable(service: Script, client: PaymentServiceClient) -> None:
    # Any 5xx is the service's trouble (often a proxy's page): try later, not a bug of ours.
    service.answers.append(Answer(500, b"<h1>Internal Server Error</h1>", "text/html"))
    with pytest.raises(PaymentServiceUnavailable) as raised:
        client.get_checkout("chk_1")
    assert (raised.value.status, raised.value.request_id) == (500, "req_hdr")


@pytest.mark.parametrize(
    "answer",
    [
        Answer(404, b"<h1>Not Found</h1>", "text/html"),  # a wrong base_url
        Answer(400, b'{"message": "not the envelope"}'),
        Answer(200, b"<html>captive portal</html>", "text/html"),
        Answer(200, b'{"checkoutId": "chk_1"}'),  # JSON, but not a checkout
        Answer(200, json.dumps({**CHECKOUT, "status": "teleported"}).encode()),
        Answer(302, b"", headers={"Location": "https://elsewhere.example/"}),
    ],
)
def test_answers_outside_the_contract_are_unexpected(
    service: Script, client: PaymentServiceClient, answer: Answer
) -> None:
    service.answers.append(answer)
    with pytest.raises(UnexpectedResponse):
        client.get_checkout("chk_1")
    assert len(service.seen) == 1  # redirects are not followed


OFF_CONTRACT_CHECKOUTS = {
    "float amount": ({"amount": 30000.7}, "amount"),
    "whole float amount": ({"amount": 30000.0}, "amount"),
    "string amount": ({"amount": "30000"}, "amount"),
    "string maxAttempts": ({"maxAttempts": "3"}, "maxAttempts"),
    "empty payment": ({"status": "paid", "payment": {}}, "payment lacks payment_id"),
}


@pytest.mark.parametrize(
    ("change", "complaint"), OFF_CONTRACT_CHECKOUTS.values(), ids=OFF_CONTRACT_CHECKOUTS.keys()
)
def test_a_checkout_with_a_non_integer_amount_or_an_empty_payment_is_unexpected(
    service: Script, client: PaymentServiceClient, change: dict[str, object], complaint: str
) -> None:
    """CONTRACT §1: amounts are integers, never floats or strings; a payment, if present, whole."""
    service.answers.append(Answer(200, json.dumps({**CHECKOUT, **change}).encode()))
    with pytest.raises(UnexpectedResponse, match=complaint):
        client.get_checkout("chk_1")


def test_a_read_timeout_is_unavailable_quickly(service: Script) -> None:
    service.answers.append(Answer(delay=1.0))
    with PaymentServiceClient(service.url, API_KEY, read_timeout=0.1) as client:
        started = time.monotonic()
        with pytest.raises(PaymentServiceUnavailable) as raised:
            client.get_checkout("chk_1")
    assert time.monotonic() - started < 0.9
    assert raised.value.code == "timeout"
    assert len(service.seen) == 1  # not retried: the first request may still be running


def test_connection_refused_is_retried_then_unavailable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    with PaymentServiceClient(
        f"http://127.0.0.1:{port}", API_KEY, retries=2, backoff_factor=0.01
    ) as client:
        started = time.monotonic()
        with pytest.raises(PaymentServiceUnavailable) as raised:
            client.find_checkouts("res_1")
    assert raised.value.code == "connection_error"
    assert time.monotonic() - started < 3
    assert API_KEY not in str(raised.value)


def test_the_api_key_never_shows(service: Script, client: PaymentServiceClient) -> None:
    assert API_KEY not in repr(client) and API_KEY not in str(client)
    service.answers.append(Answer(401, envelope("unauthenticated", "bad key")))
    with pytest.raises(Unauthenticated) as raised:
        client.get_checkout("chk_1")
    assert API_KEY not in str(raised.value) and API_KEY not in repr(raised.value)


def test_a_request_with_a_float_amount_or_naive_expiry_is_refused_locally() -> None:
    with pytest.raises(TypeError):
        checkout_request(amount=300.0)
    with pytest.raises(ValueError, match="aware"):
        checkout_request(expires_at=datetime.now() + timedelta(minutes=5))


def test_a_connection_dropped_before_the_answer_is_retried_with_the_same_key() -> None:
    """A server that reads the create and resets the connection without answering (a pooled
    keep-alive connection closed under the client): the client sends the same request again."""
    answer = json.dumps(CHECKOUT).encode()
    requests_seen: list[bytes] = []
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]

        def serve() -> None:
            for attempt in range(2):
                conn, _ = listener.accept()
                with conn:
                    requests_seen.append(read_http_request(conn))
                    if attempt == 0:  # RST instead of an answer
                        conn.setsockopt(
                            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                        )
                        continue
                    conn.sendall(
                        b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n"
                        b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(answer), answer)
                    )

        server = threading.Thread(target=serve, daemon=True)
        server.start()
        with PaymentServiceClient(
            f"http://127.0.0.1:{port}", API_KEY, backoff_factor=0.01
        ) as client:
            created = client.create_checkout(checkout_request())
        server.join(5)
    assert created.checkout_id == "chk_1"
    assert len(requests_seen) == 2
    first, second = (r.split(b"\r\n\r\n", 1) for r in requests_seen)
    assert first[1] == second[1]  # the same body
    key = [h for h in first[0].split(b"\r\n") if h.lower().startswith(b"idempotency-key:")]
    assert key and key[0] in second[0].split(b"\r\n")  # and the same Idempotency-Key
