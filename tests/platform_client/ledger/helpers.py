"""Ledger test helpers: the seeded event, callbacks as the service signs them, table snapshots."""

from __future__ import annotations

import itertools
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from platform_client.callbacks import CallbackEvent, verify_callback
from platform_client.ledger import (
    Ledger,
    PaymentRecord,
    ProcessedCallback,
    Registration,
    Reservation,
    Tier,
)
from shared_contracts.events import EventType
from tests.platform_client.builders import SECRET, callback_body, signed

EVENT = "evt_run"
FREE = "tier_free"  # price 0, 3 seats
FULL = "tier_full"  # KRW 30000, 2 seats
USD = "tier_usd"  # USD 1999, 5 seats, with a question
_ids = itertools.count(1)


def seed(ledger: Ledger) -> None:
    ledger.add_event(EVENT, "Seoul Marathon 2027")
    for tier_id, name, price, currency, capacity in [
        (FREE, "Fun run", 0, "KRW", 3),
        (FULL, "Full course", 30000, "KRW", 2),
        (USD, "Full course (abroad)", 1999, "USD", 5),
    ]:
        ledger.add_tier(
            Tier(id=tier_id, event_id=EVENT, name=name, price=price, currency=currency,
                 capacity=capacity, question="T-shirt size?" if tier_id == USD else None)
        )  # fmt: skip


def add_tier(ledger: Ledger, tier_id: str, capacity: int, price: int = 30000, **kw: Any) -> None:
    ledger.add_tier(
        Tier(id=tier_id, event_id=EVENT, name=tier_id, price=price, currency="KRW",
             capacity=capacity, **kw)
    )  # fmt: skip


def delivered(type: EventType, msg_id: str | None = None, **data: object) -> CallbackEvent:
    """A callback as the payment service sends it, verified into its typed event."""
    body = callback_body(type, **data)
    headers = signed(body, msg_id=msg_id or f"evt_test_{next(_ids)}")
    return verify_callback(body, headers, [SECRET])


def about(ledger: Ledger, reservation_id: str) -> dict[str, object]:
    """The wire data of a callback about this reservation, as the service would fill it."""
    view = ledger.reservation(reservation_id)
    assert view is not None and view.checkout_id is not None
    return {
        "checkoutId": view.checkout_id, "reservationId": view.reservation_id,
        "eventId": view.event_id, "tierId": view.tier_id, "amount": view.amount,
        "currency": view.currency, "metadata": {},
    }  # fmt: skip


def paid(ledger: Ledger, reservation_id: str, msg_id: str | None = None, **data: object):  # type: ignore[no-untyped-def]
    return delivered(
        EventType.PAID, msg_id, **{**about(ledger, reservation_id), "provider": "sandbox", **data}
    )


def snapshot(engine: Engine) -> dict[str, object]:
    """Everything a callback may change, to assert that a rejected one changed nothing."""
    with Session(engine) as session:
        return {
            "taken": dict(session.execute(select(Tier.id, Tier.taken)).all()),
            "reservations": dict(session.execute(select(Reservation.id, Reservation.status)).all()),
            "registrations": count(session, Registration),
            "payments": count(session, PaymentRecord),
            "callbacks": count(session, ProcessedCallback),
        }


def count(session: Session, model: type[Any]) -> int:
    return session.scalar(select(func.count()).select_from(model)) or 0


def counts(engine: Engine) -> tuple[int, int]:
    """(registrations, payment records)."""
    with Session(engine) as session:
        return count(session, Registration), count(session, PaymentRecord)


def taken(engine: Engine, tier_id: str) -> int:
    with Session(engine) as session:
        return session.scalar(select(Tier.taken).where(Tier.id == tier_id)) or 0
