"""Callback events (CONTRACT §8): their types, required data fields, body and wire timestamps."""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Final


class EventType(StrEnum):
    """The ``type`` of a callback body."""

    PAID = "ticket_payment.paid"
    FAILED = "ticket_payment.failed"
    EXPIRED = "ticket_payment.expired"
    CANCELED = "ticket_payment.canceled"
    REFUNDED = "ticket_payment.refunded"


_COMMON: Final = frozenset(
    {"checkoutId", "reservationId", "eventId", "tierId", "amount", "currency", "metadata"}
)

#: Wire names every ``data`` object of that type carries; receivers may rely on them.
REQUIRED_DATA_FIELDS: Final[Mapping[EventType, frozenset[str]]] = MappingProxyType(
    {
        EventType.PAID: _COMMON | {"paymentId", "provider", "txId", "paidAt"},
        EventType.FAILED: _COMMON | {"attempt", "maxAttempts", "reason"},
        EventType.EXPIRED: _COMMON,
        EventType.CANCELED: _COMMON,
        EventType.REFUNDED: _COMMON | {"paymentId", "refundId", "reason"},
    }
)

EVENT_ID_PREFIX: Final = "evt_"


def new_event_id() -> str:
    """A fresh ``webhook-id``: ``evt_`` and 144 random bits, URL-safe."""
    return EVENT_ID_PREFIX + secrets.token_urlsafe(18)


def isoformat_z(dt: datetime) -> str:
    """Render an aware datetime as RFC 3339 UTC to the second: ``2026-11-22T10:03:12Z``.

    Naive datetimes raise ValueError: guessing their zone is how timestamps drift by hours.
    """
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError("naive datetime; pass an aware one (e.g. datetime.now(UTC))")
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def event_body(
    type: EventType, data: Mapping[str, object], timestamp: datetime
) -> dict[str, object]:
    """Build a callback body; raises ValueError if ``data`` lacks a field its type requires."""
    event_type = EventType(type)
    missing = REQUIRED_DATA_FIELDS[event_type] - data.keys()
    if missing:
        raise ValueError(f"{event_type} data lacks: {', '.join(sorted(missing))}")
    return {"type": event_type.value, "timestamp": isoformat_z(timestamp), "data": dict(data)}


def encode_body(body: Mapping[str, object]) -> bytes:
    """Serialise a body to the exact bytes that are signed and sent: compact UTF-8 JSON."""
    # allow_nan=False: NaN/Infinity are not JSON and a strict receiver would reject the body.
    text = json.dumps(body, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return text.encode("utf-8")
