"""Reading delivery state back for assertions."""

from __future__ import annotations

from sqlalchemy import select

from payment_service.callbacks.models import CallbackEvent, Delivery, DeliveryAttempt
from payment_service.db import Database
from payment_service.payments.models import Refund


def delivery_of(db: Database, event_id: str) -> Delivery:
    with db.transaction() as session:
        return session.scalars(
            select(Delivery).join(CallbackEvent, CallbackEvent.seq == Delivery.seq)
            .where(CallbackEvent.id == event_id)
        ).one()  # fmt: skip


def attempts_of(db: Database, delivery_id: int) -> list[DeliveryAttempt]:
    with db.transaction() as session:
        return list(
            session.scalars(
                select(DeliveryAttempt)
                .where(DeliveryAttempt.delivery_id == delivery_id)
                .order_by(DeliveryAttempt.number)
            )
        )


def refunds_of(db: Database, checkout_id: str) -> list[tuple[str, str]]:
    """(status, reason) of the checkout's refunds."""
    with db.transaction() as session:
        refunds = session.scalars(select(Refund).where(Refund.checkout_id == checkout_id))
        return [(str(r.status), r.reason) for r in refunds]
