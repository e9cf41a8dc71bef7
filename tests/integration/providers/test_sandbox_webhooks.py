"""The sandbox adapter against the real sandbox PSP: its signed webhooks, parsed or refused."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from payment_service.providers.base import (
    EventKind,
    PaymentStatus,
    ProviderEvent,
    ProviderPayment,
    WebhookRejected,
)
from payment_service.providers.sandbox import SandboxProvider
from payment_service.sandbox_psp.signature import HEADER, sign_webhook
from tests.integration.providers.conftest import (
    WEBHOOK_SECRET,
    NewRequest,
    Receiver,
    buyer_pays,
    paid_payment,
)

# -- webhooks ---------------------------------------------------------------------------------


def signed(body: bytes, *, secret: str = WEBHOOK_SECRET, at: float | None = None) -> dict[str, str]:
    stamp = int(time.time() if at is None else at)
    return {"Content-Type": "application/json", HEADER: sign_webhook(secret, stamp, body)}


def payment_event_body(event_type: str = "payment.succeeded", **payment: Any) -> bytes:
    succeeded = event_type == "payment.succeeded"
    obj = {
        "id": "sbp_aaaaaaaaaaaaaaaaaaaaaaaa",
        "object": "payment",
        "sessionId": "sbs_bbbbbbbbbbbbbbbbbbbbbbbb",
        "reference": "chk_1",
        "status": "succeeded" if succeeded else "declined",
        "amount": 30000,
        "currency": "KRW",
        "amountRefunded": 0,
        "txId": "sbtx_cccccccccccccccccccccccc" if succeeded else None,
        "declineCode": None if succeeded else "card_declined",
        "createdAt": "2027-03-01T09:30:00Z",
        **payment,
    }
    event = {"id": "sbe_1", "type": event_type, "created": 1_800_000_000, "data": {"object": obj}}
    return json.dumps(event, separators=(",", ":")).encode()


def test_a_signed_payment_event_is_parsed(provider: SandboxProvider) -> None:
    body = payment_event_body()
    event = provider.parse_webhook(body, signed(body))
    assert event == ProviderEvent(
        event_id="sbe_1",
        kind=EventKind.PAYMENT_SUCCEEDED,
        occurred_at=datetime(2027, 1, 15, 8, 0, tzinfo=UTC),
        payment=ProviderPayment(
            payment_id="sbp_aaaaaaaaaaaaaaaaaaaaaaaa",
            session_id="sbs_bbbbbbbbbbbbbbbbbbbbbbbb",
            reference="chk_1",
            status=PaymentStatus.SUCCEEDED,
            amount=30000,
            currency="KRW",
            tx_id="sbtx_cccccccccccccccccccccccc",
            decline_code=None,
            occurred_at=datetime(2027, 3, 1, 9, 30, tzinfo=UTC),
        ),
        session_id="sbs_bbbbbbbbbbbbbbbbbbbbbbbb",
    )
    assert event.occurred_at.tzinfo is UTC


def test_the_signature_header_is_found_in_any_case(provider: SandboxProvider) -> None:
    body = payment_event_body("payment.declined")
    header = signed(body)[HEADER]
    for name in (HEADER, HEADER.lower(), HEADER.upper()):
        event = provider.parse_webhook(body, {name: header})
        assert event.kind is EventKind.PAYMENT_DECLINED
        assert event.payment is not None and event.payment.decline_code == "card_declined"


def test_other_event_kinds_are_parsed(provider: SandboxProvider) -> None:
    refund = {
        "id": "sbr_1",
        "object": "refund",
        "paymentId": "sbp_1",
        "amount": 500,
        "currency": "KRW",
        "reason": None,
        "status": "succeeded",
        "createdAt": "2027-03-01T09:30:00Z",
    }
    bodies = {
        "refund.succeeded": {"object": refund},
        "session.expired": {"object": {"id": "sbs_9", "object": "session", "status": "expired"}},
        "payment.captured_someday": {"object": {"whatever": True}},
    }
    events = {}
    for event_type, data in bodies.items():
        raw = json.dumps(
            {"id": f"sbe_{event_type}", "type": event_type, "created": 1, "data": data}
        )
        events[event_type] = provider.parse_webhook(raw.encode(), signed(raw.encode()))

    refunded = events["refund.succeeded"]
    assert refunded.kind is EventKind.REFUND_SUCCEEDED and refunded.payment is None
    assert refunded.refund is not None
    assert (refunded.refund.refund_id, refunded.refund.payment_id) == ("sbr_1", "sbp_1")
    assert (refunded.refund.amount, refunded.refund.succeeded) == (500, True)
    expired = events["session.expired"]
    assert (expired.kind, expired.session_id) == (EventKind.SESSION_EXPIRED, "sbs_9")
    other = events["payment.captured_someday"]
    assert other.kind is EventKind.OTHER and other.event_id == "sbe_payment.captured_someday"
    assert other.occurred_at == datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC)


def test_forged_stale_or_unsigned_webhooks_are_rejected(provider: SandboxProvider) -> None:
    body = payment_event_body()
    good = signed(body)
    cases: dict[str, tuple[bytes, dict[str, str]]] = {
        "tampered body": (body.replace(b"30000", b"30"), good),
        "wrong secret": (body, signed(body, secret="sbx_whsec_dev")),
        "stale timestamp": (body, signed(body, at=time.time() - 3600)),
        "future timestamp": (body, signed(body, at=time.time() + 3600)),
        "missing header": (body, {"Content-Type": "application/json"}),
        "empty header": (body, {HEADER: ""}),
        "garbled header": (body, {HEADER: "v1=abc"}),
        "absurd timestamp": (body, {HEADER: f"t={'9' * 400},v1=abc"}),
    }
    for case, (raw, headers) in cases.items():
        with pytest.raises(WebhookRejected):
            provider.parse_webhook(raw, headers)
            pytest.fail(f"{case} was accepted")


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"\xff\xfe\x00",
        b"[1, 2]",
        b'{"id": "sbe_1", "type": "payment.succeeded", "created": 1}',
        b'{"id": "sbe_1", "created": 1, "data": {}}',
        b'{"id": "sbe_1", "type": "session.expired", "created": "yesterday", "data": {}}',
        b'{"id": "sbe_1", "type": "session.expired", "created": 1, "data": {"object": {}}}',
        b'{"id": "sbe_1", "type": "refund.succeeded", "created": 1, "data": {"object": []}}',
        payment_event_body(amount="30000"),
        payment_event_body(amount=True),
        payment_event_body(status="pending"),
        payment_event_body(createdAt="2027-03-01T09:30:00"),  # no zone
        payment_event_body(createdAt="soon"),
        payment_event_body(createdAt="9999-12-31T23:59:59-01:00"),  # overflows in UTC
        b'{"id": "sbe_1", "type": "other", "created": 100000000000000000000, "data": {}}',
        payment_event_body("payment.declined", status="succeeded"),  # kind and status disagree
        b"[" * 50_000 + b"]" * 50_000,  # json.loads recurses past Python's limit
    ],
)
def test_a_correctly_signed_body_that_cannot_be_parsed_is_rejected(
    provider: SandboxProvider, body: bytes
) -> None:
    with pytest.raises(WebhookRejected, match="unparseable"):
        provider.parse_webhook(body, signed(body))


def test_real_webhooks_from_the_sandbox_parse(
    provider: SandboxProvider, receiver: Receiver, new_request: NewRequest
) -> None:
    declined = provider.create_session(new_request())
    buyer_pays(declined.redirect_url, "declined")
    payment = paid_payment(provider, new_request)
    refund = provider.refund(payment.payment_id, 700, idempotency_key="w-1", reason="r")
    expiring = provider.create_session(new_request())
    provider.expire_session(expiring.session_id)

    events = [provider.parse_webhook(r.body, r.headers) for r in receiver.wait_for(4)]
    by_kind = {event.kind: event for event in events}
    assert set(by_kind) == {
        EventKind.PAYMENT_DECLINED,
        EventKind.PAYMENT_SUCCEEDED,
        EventKind.REFUND_SUCCEEDED,
        EventKind.SESSION_EXPIRED,
    }
    assert len({event.event_id for event in events}) == 4
    assert by_kind[EventKind.PAYMENT_SUCCEEDED].payment == payment
    assert by_kind[EventKind.PAYMENT_SUCCEEDED].session_id == payment.session_id
    failed = by_kind[EventKind.PAYMENT_DECLINED].payment
    assert failed is not None and failed.session_id == declined.session_id
    assert by_kind[EventKind.REFUND_SUCCEEDED].refund == refund
    assert by_kind[EventKind.SESSION_EXPIRED].session_id == expiring.session_id
