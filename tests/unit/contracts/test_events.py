"""Callback event types, bodies and wire timestamps (CONTRACT §8)."""

import json
import re
from datetime import UTC, datetime, timedelta, timezone

import pytest

from shared_contracts.events import (
    REQUIRED_DATA_FIELDS,
    EventType,
    encode_body,
    event_body,
    isoformat_z,
    new_event_id,
)

COMMON = {
    "checkoutId": "chk_1",
    "reservationId": "res_123",
    "eventId": "evt_42",
    "tierId": "tier_7",
    "amount": 30000,
    "currency": "KRW",
    "metadata": {},
}
EXTRA = {
    EventType.PAID: {
        "paymentId": "pay_1",
        "provider": "sandbox",
        "txId": "tx_1",
        "paidAt": "2026-11-22T10:03:12Z",
    },
    EventType.FAILED: {"attempt": 1, "maxAttempts": 3, "reason": "card_declined"},
    EventType.EXPIRED: {},
    EventType.CANCELED: {},
    EventType.REFUNDED: {"paymentId": "pay_1", "refundId": "ref_1", "reason": "rejected"},
}
WHEN = datetime(2026, 11, 22, 10, 3, 12, 987654, tzinfo=UTC)


def data_for(event_type):
    return {**COMMON, **EXTRA[event_type]}


def test_event_type_values():
    assert [t.value for t in EventType] == [
        "ticket_payment.paid",
        "ticket_payment.failed",
        "ticket_payment.expired",
        "ticket_payment.canceled",
        "ticket_payment.refunded",
    ]


def test_every_type_has_required_fields():
    assert set(REQUIRED_DATA_FIELDS) == set(EventType)


@pytest.mark.parametrize("event_type", list(EventType))
def test_required_fields_are_common_plus_extras(event_type):
    assert REQUIRED_DATA_FIELDS[event_type] == set(COMMON) | set(EXTRA[event_type])


def test_event_ids_are_prefixed_random_and_url_safe():
    ids = {new_event_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(re.fullmatch(r"evt_[A-Za-z0-9_-]{24}", i) for i in ids)


@pytest.mark.parametrize(
    ("dt", "expected"),
    [
        (WHEN, "2026-11-22T10:03:12Z"),
        (
            datetime(2026, 11, 22, 19, 3, 12, tzinfo=timezone(timedelta(hours=9))),
            "2026-11-22T10:03:12Z",
        ),
        (datetime(2026, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=1))), "2025-12-31T23:30:00Z"),
    ],
)
def test_isoformat_z_renders_utc_seconds(dt, expected):
    assert isoformat_z(dt) == expected


def test_isoformat_z_rejects_naive():
    with pytest.raises(ValueError):
        isoformat_z(datetime(2026, 11, 22, 10, 3, 12))


@pytest.mark.parametrize("event_type", list(EventType))
def test_event_body(event_type):
    body = event_body(event_type, data_for(event_type), WHEN)
    assert body == {
        "type": event_type.value,
        "timestamp": "2026-11-22T10:03:12Z",
        "data": data_for(event_type),
    }


def test_event_body_accepts_the_type_as_a_string():
    assert event_body("ticket_payment.expired", COMMON, WHEN)["type"] == "ticket_payment.expired"


def test_event_body_rejects_unknown_type():
    with pytest.raises(ValueError):
        event_body("ticket_payment.teleported", COMMON, WHEN)


@pytest.mark.parametrize("event_type", [EventType.PAID, EventType.FAILED, EventType.REFUNDED])
def test_event_body_rejects_missing_type_specific_fields(event_type):
    with pytest.raises(ValueError, match="lacks"):
        event_body(event_type, COMMON, WHEN)


def test_event_body_rejects_missing_common_field():
    data = dict(COMMON)
    del data["reservationId"]
    with pytest.raises(ValueError, match="reservationId"):
        event_body(EventType.CANCELED, data, WHEN)


def test_encode_body_is_compact_utf8_and_keeps_order():
    body = {"type": "ticket_payment.paid", "data": {"name": "콘서트 €", "amount": 1}}
    encoded = encode_body(body)
    assert (
        encoded == '{"type":"ticket_payment.paid","data":{"name":"콘서트 €","amount":1}}'.encode()
    )
    assert json.loads(encoded) == body


def test_encode_body_is_deterministic():
    body = event_body(EventType.PAID, data_for(EventType.PAID), WHEN)
    assert encode_body(body) == encode_body(json.loads(encode_body(body)))


def test_encode_body_refuses_nan():
    with pytest.raises(ValueError):
        encode_body({"amount": float("nan")})
