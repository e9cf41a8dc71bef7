"""Write callback events into the outbox, inside the caller's transaction."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy.orm import Session

from payment_service.callbacks.models import CallbackEvent
from payment_service.checkouts.models import Checkout
from payment_service.db import utcnow
from shared_contracts.events import EventType, event_body, new_event_id


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
    """Add one event for the checkout's platform; it commits with the state change it reports."""
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
    return event
