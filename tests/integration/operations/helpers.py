"""Driving deliveries to a given state the way the worker does."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, update

from payment_service.callbacks.dispatcher import attempt_delivery, claim_due
from payment_service.callbacks.models import CallbackEvent, Delivery
from payment_service.db import Database, utcnow


def deliver_due(
    db: Database, *, schedule: Sequence[int] = (0, 1, 2), now: datetime | None = None
) -> list[str | None]:
    """One worker round: claim every due delivery and attempt it; the outcomes, in order."""
    now = now or utcnow()
    return [
        attempt_delivery(db, claim, allow_private=True, schedule=schedule, now=now)
        for claim in claim_due(db, "test-worker", now=now)
    ]


def force_status(db: Database, event_id: str, status: str) -> None:
    """Move a delivery straight to ``status`` (as if its schedule had run out, say)."""
    with db.transaction() as session:
        seq = select(CallbackEvent.seq).where(CallbackEvent.id == event_id).scalar_subquery()
        session.execute(update(Delivery).where(Delivery.seq == seq).values(status=status))
