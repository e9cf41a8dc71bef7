"""Write callback events and their deliveries into the outbox, inside the caller's transaction."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import text
from sqlalchemy.orm import Session

from payment_service.callbacks.models import CallbackEvent, Delivery, DeliveryStatus
from payment_service.checkouts.models import Checkout
from payment_service.db import utcnow
from shared_contracts.events import EventType, event_body, new_event_id

# The PostgreSQL channel that wakes delivery workers when an event commits.
WAKE_CHANNEL = "callback_events"


def checkout_data(checkout: Checkout) -> dict[str, object]:
    """The data fields every event about a checkout carries."""
    return {
        "checkoutId": checkout.id,
        "reservationId": checkout.reservation_id,
        "eventId": checkout.event_id,
        "tierId": checkout.tier_id,
        "amount": checkout.amount,
        "currency": checkout.currency,
        "metadata": dict(checkout.metadata_ or {}),
    }


def record_event(
    session: Session,
    checkout: Checkout,
    event_type: EventType,
    extra: Mapping[str, object] | None = None,
    *,
    request_id: str | None,
) -> CallbackEvent:
    """Add one event for the checkout's platform, and its delivery, due now; both commit with
    the state change they report, so an event is never lost and never sent before it exists.

    On PostgreSQL the commit also wakes the workers (NOTIFY callback_events), so the callback
    leaves within milliseconds instead of on the next polling tick.
    """
    now = utcnow()
    event = CallbackEvent(
        id=new_event_id(),
        merchant_id=checkout.merchant_id,
        checkout_id=checkout.id,
        type=event_type.value,
        payload=event_body(event_type, {**checkout_data(checkout), **(extra or {})}, now),
        callback_url=checkout.callback_url,
        request_id=request_id,
        created_at=now,
    )
    session.add(event)
    # The unit of work inserts the event first and copies its seq into the delivery.
    session.add(
        Delivery(
            event=event,
            merchant_id=checkout.merchant_id,
            checkout_id=checkout.id,
            status=DeliveryStatus.PENDING,
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
    )
    if session.get_bind().dialect.name == "postgresql":
        # Delivered at commit, dropped on rollback; repeats in one transaction fold into one.
        session.execute(text(f"SELECT pg_notify('{WAKE_CHANNEL}', '')"))
    return event
