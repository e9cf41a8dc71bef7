"""The ledger's row reads and locks for holds, as Core statements built once at import.

Building a SQLAlchemy statement costs more CPU than running it, and an ORM load costs more than
a row, so the hot path of a start reads rows, not objects. These run inside the caller's
transaction; holds.py decides what they mean.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BindParameter, Row, Select, bindparam, select, update
from sqlalchemy.orm import Session

from platform_client.ledger.models import Event, Registration, Reservation, ReservationStatus, Tier

#: Built once: building a statement costs more CPU than running it.
_LOCK_TIER = (
    select(
        Tier.id, Tier.event_id, Tier.name, Tier.price, Tier.currency, Tier.capacity, Tier.taken,
        Tier.valid_from, Tier.valid_until,
    )
    .where(Tier.id == bindparam("tier_id"))
    .with_for_update()
)  # fmt: skip
_SET_TAKEN = update(Tier).where(Tier.id == bindparam("tier_id")).values(taken=bindparam("taken"))


def lock_tier(session: Session, tier_id: str) -> Row[*tuple[Any, ...]] | None:
    """The tier's seats, price and window, row-locked until the transaction ends (PostgreSQL
    ``FOR UPDATE``; SQLite has no row locks and relies on the engine's ``BEGIN IMMEDIATE``).
    A Core read: nothing is loaded into the session."""
    return session.connection().execute(_LOCK_TIER, {"tier_id": tier_id}).first()


def set_taken(session: Session, tier_id: str, taken: int) -> None:
    """Store the count read under ``lock_tier`` plus or minus one (the lock makes it current)."""
    session.connection().execute(_SET_TAKEN, {"tier_id": tier_id, "taken": taken})


def _seat_state_statement() -> Select[*tuple[Any, ...]]:
    user: BindParameter[str] = bindparam("user_id")
    event: BindParameter[str] = bindparam("event_id")
    registered = select(Registration.id).where(
        Registration.user_id == user, Registration.event_id == event
    )
    holding = select(Reservation.id).where(
        Reservation.user_id == user, Reservation.event_id == event,
        Reservation.status == ReservationStatus.PENDING_PAYMENT,
    )  # fmt: skip
    return (
        select(
            Tier.event_id, Tier.name, Tier.price, Tier.currency, Tier.capacity, Tier.taken,
            Tier.valid_from, Tier.valid_until, Event.name.label("event_name"),
            registered.exists().label("registered"), holding.exists().label("holding"),
        )
        .join(Event, Event.id == Tier.event_id)
        .where(Tier.id == bindparam("tier_id"))
    )  # fmt: skip


#: Built once: building a statement costs more CPU than running it.
_SEAT_STATE = _seat_state_statement()


def seat_state(
    session: Session, user_id: str, event_id: str, tier_id: str
) -> Row[*tuple[Any, ...]] | None:
    """In one plain read (no lock): the tier's seats, sale window, price and names, and whether
    the user has a registration or a live hold for ``event_id``; None if no such tier."""
    params = {"user_id": user_id, "event_id": event_id, "tier_id": tier_id}
    return session.connection().execute(_SEAT_STATE, params).first()
