"""verify_callback: a signed callback body (CONTRACT §8) to one typed, trusted event."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any, TypeVar

from marshmallow import ValidationError

from platform_client.errors import InvalidSignature, MalformedPayload, StaleTimestamp
from shared_contracts import signing
from shared_contracts.checkouts import parse_wire_datetime
from shared_contracts.events import REQUIRED_DATA_FIELDS, EventType


@dataclass(frozen=True, kw_only=True)
class CallbackEvent:
    """Fields every callback carries. ``event_id`` is the ``webhook-id`` (the same on every
    retry: de-duplicate on it); ``platform_event_id`` is the platform's own event (data.eventId).
    """

    event_id: str
    type: EventType
    timestamp: datetime
    checkout_id: str
    reservation_id: str
    platform_event_id: str
    tier_id: str
    amount: int
    currency: str
    metadata: Mapping[str, str] = field(default_factory=dict)
    request_id: str | None = None  # x-request-id: the service's request that caused this


@dataclass(frozen=True, kw_only=True)
class TicketPaymentPaid(CallbackEvent):
    """Money was taken. ``late`` means the checkout had already left ``open`` (e.g. expired):
    accept it only if the seat is still free, else reject so the service refunds."""

    payment_id: str
    provider: str
    tx_id: str | None
    paid_at: datetime
    late: bool = False


@dataclass(frozen=True, kw_only=True)
class TicketPaymentFailed(CallbackEvent):
    """A declined attempt; the checkout stays open until ``attempt == max_attempts``."""

    attempt: int
    max_attempts: int
    reason: str | None


@dataclass(frozen=True, kw_only=True)
class TicketPaymentExpired(CallbackEvent):
    """The checkout expired unpaid: release the hold."""


@dataclass(frozen=True, kw_only=True)
class TicketPaymentCanceled(CallbackEvent):
    """The checkout was canceled unpaid: release the hold."""


@dataclass(frozen=True, kw_only=True)
class TicketPaymentRefunded(CallbackEvent):
    """A payment was refunded."""

    payment_id: str
    refund_id: str
    reason: str | None


def verify_callback(
    body: bytes,
    headers: Mapping[str, str],
    secrets: str | Sequence[str],
    tolerance: int = signing.DEFAULT_TOLERANCE,
    *,
    now: int | None = None,
) -> CallbackEvent:
    """Check the signature of a received callback, then parse it into its typed event.

    ``body`` must be the raw bytes received; ``tolerance`` is in seconds either side of now.
    Raises InvalidSignature (missing or malformed headers, or no matching signature),
    StaleTimestamp, or MalformedPayload (signed, but not a callback this client understands);
    a malformed secret is a configuration error (ValueError).
    """
    try:
        signing.verify(secrets, headers, body, tolerance=tolerance, now=now)
    except signing.StaleTimestamp as exc:
        raise StaleTimestamp(str(exc)) from None
    except signing.WebhookVerificationError as exc:
        raise InvalidSignature(str(exc)) from None
    lowered = {name.lower(): value for name, value in headers.items()}
    try:
        decoded = json.loads(body)
    except (ValueError, RecursionError):  # bad UTF-8 or JSON, or absurdly deep nesting
        raise MalformedPayload("the body is not JSON") from None
    return parse_event(decoded, lowered["webhook-id"], lowered.get("x-request-id"))


def parse_event(decoded: object, event_id: str, request_id: str | None = None) -> CallbackEvent:
    """A decoded (already verified) callback body to its typed event, or MalformedPayload."""
    body = _object(decoded, "the body")
    raw_type = body.get("type")
    if not isinstance(raw_type, str) or raw_type not in _BUILDERS:
        raise MalformedPayload(f"unknown callback type {raw_type!r}")
    event_type = EventType(raw_type)
    data = _object(body.get("data"), "data")
    missing = REQUIRED_DATA_FIELDS[event_type] - data.keys()
    if missing:
        raise MalformedPayload(f"{event_type} data lacks: {', '.join(sorted(missing))}")
    common: dict[str, Any] = {
        "event_id": event_id,
        "type": event_type,
        "timestamp": _datetime(body.get("timestamp"), "timestamp"),
        "checkout_id": _text(data, "checkoutId"),
        "reservation_id": _text(data, "reservationId"),
        "platform_event_id": _text(data, "eventId"),
        "tier_id": _text(data, "tierId"),
        "amount": _integer(data, "amount"),
        "currency": _text(data, "currency"),
        "metadata": _metadata(data.get("metadata")),
        "request_id": request_id,
    }
    return _BUILDERS[event_type](data, common)


def _paid(data: dict[str, Any], common: dict[str, Any]) -> CallbackEvent:
    late = data.get("late", False)
    if not isinstance(late, bool):
        raise MalformedPayload("data.late must be a boolean")
    return TicketPaymentPaid(
        **common,
        payment_id=_text(data, "paymentId"),
        provider=_text(data, "provider"),
        tx_id=_optional_text(data, "txId"),
        paid_at=_datetime(data.get("paidAt"), "data.paidAt"),
        late=late,
    )


def _failed(data: dict[str, Any], common: dict[str, Any]) -> CallbackEvent:
    return TicketPaymentFailed(
        **common,
        attempt=_integer(data, "attempt"),
        max_attempts=_integer(data, "maxAttempts"),
        reason=_optional_text(data, "reason"),
    )


def _refunded(data: dict[str, Any], common: dict[str, Any]) -> CallbackEvent:
    return TicketPaymentRefunded(
        **common,
        payment_id=_text(data, "paymentId"),
        refund_id=_text(data, "refundId"),
        reason=_optional_text(data, "reason"),
    )


_Event = TypeVar("_Event", bound=CallbackEvent)


def _plain(cls: type[_Event]) -> Callable[[dict[str, Any], dict[str, Any]], CallbackEvent]:
    return lambda _data, common: cls(**common)


_BUILDERS: Mapping[EventType, Callable[[dict[str, Any], dict[str, Any]], CallbackEvent]] = (
    MappingProxyType(
        {
            EventType.PAID: _paid,
            EventType.FAILED: _failed,
            EventType.EXPIRED: _plain(TicketPaymentExpired),
            EventType.CANCELED: _plain(TicketPaymentCanceled),
            EventType.REFUNDED: _refunded,
        }
    )
)


def _object(value: object, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise MalformedPayload(f"{what} must be a JSON object")
    return value


def _text(data: dict[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value:
        raise MalformedPayload(f"data.{name} must be a non-empty string")
    return value


def _optional_text(data: dict[str, Any], name: str) -> str | None:
    value = data.get(name)
    if value is not None and not isinstance(value, str):
        raise MalformedPayload(f"data.{name} must be a string or null")
    return value


def _integer(data: dict[str, Any], name: str) -> int:
    value = data.get(name)
    # bool is an int subclass; JSON true must not become 1.
    if isinstance(value, bool) or not isinstance(value, int):
        raise MalformedPayload(f"data.{name} must be an integer")
    return value


def _datetime(value: object, name: str) -> datetime:
    if not isinstance(value, str):
        raise MalformedPayload(f"{name} must be an RFC 3339 timestamp")
    try:
        return parse_wire_datetime(value)
    except ValidationError:
        raise MalformedPayload(f"{name} must be an RFC 3339 timestamp with an offset") from None


def _metadata(value: object) -> Mapping[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(key, str) and isinstance(item, str) for key, item in value.items()
    ):
        raise MalformedPayload("data.metadata must be an object of string values")
    return MappingProxyType(dict(value))
