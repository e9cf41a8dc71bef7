"""verify_callback: signatures (ours and the standardwebhooks library's), then strict parsing."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook

from platform_client.callbacks import (
    TicketPaymentCanceled,
    TicketPaymentExpired,
    TicketPaymentFailed,
    TicketPaymentPaid,
    TicketPaymentRefunded,
    verify_callback,
)
from platform_client.errors import InvalidSignature, MalformedPayload, StaleTimestamp
from shared_contracts.events import EventType
from shared_contracts.signing import webhook_headers
from tests.platform_client.builders import DATA, OLD_SECRET, SECRET, callback_body, signed


def test_a_paid_callback_becomes_a_typed_event() -> None:
    body = callback_body(EventType.PAID)
    event = verify_callback(body, signed(body), SECRET)

    assert isinstance(event, TicketPaymentPaid)
    assert event.event_id == "evt_abc" and event.type is EventType.PAID
    assert event.timestamp == datetime(2026, 11, 22, 10, 3, 12, tzinfo=UTC)
    assert (event.checkout_id, event.reservation_id) == ("chk_1", "res_123")
    assert (event.platform_event_id, event.tier_id) == ("evt_42", "tier_7")
    assert (event.amount, event.currency, event.metadata) == (30000, "KRW", {"seat": "A1"})
    assert (event.payment_id, event.provider, event.tx_id) == ("pay_1", "sandbox", "tx_1")
    assert event.paid_at == datetime(2026, 11, 22, 10, 3, 12, tzinfo=UTC)
    assert event.late is False and event.request_id == "req_1"


def test_each_type_is_parsed() -> None:
    def parse(type: EventType, **data: object) -> object:
        body = callback_body(type, **data)
        return verify_callback(body, signed(body), SECRET)

    late = parse(EventType.PAID, late=True, txId=None)
    assert isinstance(late, TicketPaymentPaid) and late.late and late.tx_id is None
    failed = parse(EventType.FAILED)
    assert isinstance(failed, TicketPaymentFailed)
    assert (failed.attempt, failed.max_attempts, failed.reason) == (1, 3, "card_declined")
    assert isinstance(parse(EventType.EXPIRED), TicketPaymentExpired)
    assert isinstance(parse(EventType.CANCELED), TicketPaymentCanceled)
    refunded = parse(EventType.REFUNDED)
    assert isinstance(refunded, TicketPaymentRefunded)
    assert (refunded.payment_id, refunded.refund_id, refunded.reason) == (
        "pay_1",
        "rf_1",
        "rejected",
    )


def test_a_body_signed_by_the_standardwebhooks_library_verifies() -> None:
    body = callback_body(EventType.EXPIRED)
    now = datetime.now(UTC)
    signature = Webhook(SECRET).sign("evt_lib", now, body.decode())
    headers = {
        "Webhook-Id": "evt_lib",
        "Webhook-Timestamp": str(int(now.timestamp())),
        "Webhook-Signature": signature,
    }
    event = verify_callback(body, headers, [SECRET])
    assert isinstance(event, TicketPaymentExpired) and event.event_id == "evt_lib"


def test_both_secrets_verify_during_a_rotation() -> None:
    body = callback_body()
    assert verify_callback(body, signed(body, [OLD_SECRET]), [SECRET, OLD_SECRET])
    assert verify_callback(body, signed(body, [OLD_SECRET, SECRET]), SECRET)
    with pytest.raises(InvalidSignature):
        verify_callback(body, signed(body, [OLD_SECRET]), SECRET)


def test_a_tampered_body_or_wrong_secret_is_an_invalid_signature() -> None:
    body = callback_body()
    headers = signed(body)
    with pytest.raises(InvalidSignature):
        verify_callback(body.replace(b"30000", b"3000"), headers, SECRET)
    with pytest.raises(InvalidSignature):
        verify_callback(body, {**headers, "webhook-id": "evt_other"}, SECRET)
    with pytest.raises(InvalidSignature):
        verify_callback(body, signed(body, [OLD_SECRET]), SECRET)


@pytest.mark.parametrize("drop", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_missing_headers_are_an_invalid_signature(drop: str) -> None:
    body = callback_body()
    headers = {k: v for k, v in signed(body).items() if k != drop}
    with pytest.raises(InvalidSignature):
        verify_callback(body, headers, SECRET)


def test_a_junk_timestamp_is_an_invalid_signature() -> None:
    body = callback_body()
    with pytest.raises(InvalidSignature):
        verify_callback(body, {**signed(body), "webhook-timestamp": "soon"}, SECRET)


@pytest.mark.parametrize("offset", [-301, 301])
def test_stale_and_future_timestamps(offset: int) -> None:
    body = callback_body()
    now = int(time.time())
    headers = signed(body, timestamp=now + offset)
    with pytest.raises(StaleTimestamp):
        verify_callback(body, headers, SECRET, now=now)
    assert verify_callback(body, headers, SECRET, now=now, tolerance=400)


def test_the_tolerance_may_be_passed_positionally_as_documented() -> None:
    body = callback_body()
    now = int(time.time())
    headers = signed(body, timestamp=now - 301)
    assert verify_callback(body, headers, SECRET, 400, now=now)
    with pytest.raises(StaleTimestamp):
        verify_callback(body, headers, SECRET, 300, now=now)


def test_headers_with_a_lone_surrogate_are_an_invalid_signature_not_a_crash() -> None:
    """A framework that decodes header bytes with surrogateescape turns the byte 0xff into the
    lone surrogate U+DCFF; no sender can have signed that (the signed content is UTF-8)."""
    body = callback_body()
    headers = signed(body)
    for name in ("webhook-id", "webhook-timestamp", "webhook-signature"):
        with pytest.raises(InvalidSignature):
            verify_callback(body, {**headers, name: headers[name] + "\udcff"}, SECRET)


def _body_with(**changes: object) -> bytes:
    body = json.loads(callback_body())
    body["data"].update(changes)
    return json.dumps(body).encode()


def _without(field: str) -> bytes:
    body = json.loads(callback_body())
    del body["data"][field]
    return json.dumps(body).encode()


MALFORMED = {
    "not json": b"{not json",
    "not utf-8": b'{"type": "\xff"}',
    "empty": b"",
    "deep nesting": b"[" * 100_000,
    "a list": b"[1, 2]",
    "a string": b'"ticket_payment.paid"',
    "null": b"null",
    "unknown type": json.dumps({"type": "ticket_payment.teleported", "timestamp": "2026-11-22T10:03:12Z", "data": DATA[EventType.PAID]}).encode(),
    "type not a string": json.dumps({"type": ["x"], "timestamp": "2026-11-22T10:03:12Z", "data": {}}).encode(),
    "no data": json.dumps({"type": "ticket_payment.paid", "timestamp": "2026-11-22T10:03:12Z"}).encode(),
    "data not an object": json.dumps({"type": "ticket_payment.paid", "timestamp": "2026-11-22T10:03:12Z", "data": []}).encode(),
    "bad timestamp": json.dumps({"type": "ticket_payment.expired", "timestamp": "yesterday", "data": DATA[EventType.EXPIRED]}).encode(),
    "naive timestamp": json.dumps({"type": "ticket_payment.expired", "timestamp": "2026-11-22T10:03:12", "data": DATA[EventType.EXPIRED]}).encode(),
    "missing checkoutId": _without("checkoutId"),
    "missing paidAt": _without("paidAt"),
    "amount as string": _body_with(amount="30000"),
    "amount as float": _body_with(amount=30000.0),
    "amount as bool": _body_with(amount=True),
    "amount NaN": callback_body().replace(b'"amount":30000', b'"amount":NaN'),
    "empty checkoutId": _body_with(checkoutId=""),
    "checkoutId a number": _body_with(checkoutId=7),
    "metadata a list": _body_with(metadata=["a"]),
    "metadata a number value": _body_with(metadata={"seat": 1}),
    "late a string": _body_with(late="yes"),
    "txId a number": _body_with(txId=5),
}  # fmt: skip


@pytest.mark.parametrize("body", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_but_signed_bodies_are_malformed_payloads(body: bytes) -> None:
    with pytest.raises(MalformedPayload):
        verify_callback(body, webhook_headers([SECRET], "evt_m", body), SECRET)


def test_a_malformed_secret_is_a_configuration_error() -> None:
    body = callback_body()
    with pytest.raises(ValueError, match="whsec_"):
        verify_callback(body, signed(body), "not-a-secret")
