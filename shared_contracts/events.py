"""Callback events (CONTRACT §8): their types, required data fields, body and wire timestamps."""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Final

from marshmallow import Schema, fields, validate


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


# --- The merchant's events API: GET /v1/events, POST /v1/events/{eventId}/redeliver -------

#: How many of a delivery's most recent attempts the events API shows.
MAX_LISTED_ATTEMPTS: Final = 10


class DeliveryStatus(StrEnum):
    """Where the delivery of one event stands."""

    PENDING = "pending"  # waiting for its next attempt, or being attempted now
    DELIVERED = "delivered"  # the platform answered 2xx
    REJECTED = "rejected"  # 409/410/422 with an error body: final, never retried
    DEAD = "dead"  # the retry schedule ran out; it can be redelivered


class FindEventsQuerySchema(Schema):
    checkout_id = fields.String(
        data_key="checkoutId",
        required=True,
        validate=validate.Length(1, 128),
        metadata={"description": "The checkout whose events to list."},
    )


class DeliveryAttemptSchema(Schema):
    number = fields.Integer(metadata={"description": "1 for the first attempt."})
    started_at = fields.AwareDateTime(data_key="startedAt")
    duration_ms = fields.Integer(data_key="durationMs")
    status_code = fields.Integer(
        data_key="statusCode",
        allow_none=True,
        metadata={"description": "Your receiver's HTTP status; null if it did not answer."},
    )
    error = fields.String(
        allow_none=True,
        metadata={"description": "Why there was no answer (timeout, connection failed, ...)."},
    )


class EventDeliverySchema(Schema):
    status = fields.Enum(DeliveryStatus, by_value=True)
    attempts = fields.Integer(metadata={"description": "Attempts made so far."})
    last_status_code = fields.Integer(data_key="lastStatusCode", allow_none=True)
    last_error = fields.String(data_key="lastError", allow_none=True)
    next_attempt_at = fields.AwareDateTime(
        data_key="nextAttemptAt",
        allow_none=True,
        metadata={"description": "When the next attempt is due; null unless pending."},
    )
    delivered_at = fields.AwareDateTime(data_key="deliveredAt", allow_none=True)
    recent_attempts = fields.List(
        fields.Nested(DeliveryAttemptSchema),
        data_key="recentAttempts",
        metadata={"description": f"The last {MAX_LISTED_ATTEMPTS} attempts at most, oldest first."},
    )


class EventSchema(Schema):
    """One callback event and the state of its delivery."""

    event_id = fields.String(
        data_key="eventId",
        metadata={
            "description": "The callback's `webhook-id` (`evt_…`): the same on every retry and "
            "redelivery (not `data.eventId`, which is your event's id)."
        },
    )
    type = fields.Enum(EventType, by_value=True)
    created_at = fields.AwareDateTime(data_key="createdAt")
    data = fields.Dict(keys=fields.String(), metadata={"description": "The callback's `data`."})
    delivery = fields.Nested(EventDeliverySchema)


class EventListSchema(Schema):
    data = fields.List(fields.Nested(EventSchema))
