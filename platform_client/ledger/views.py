"""Read models for pages: frozen copies of ledger rows, so no ORM object leaves a session."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any

from sqlalchemy import Connection, Engine, Row, bindparam, select
from sqlalchemy.orm import Session

from platform_client.ledger.models import Event, Registration, Reservation, ReservationStatus, Tier
from platform_client.ledger.single import SingleStatement


@dataclass(frozen=True, kw_only=True)
class TierView:
    tier_id: str
    event_id: str
    event_name: str
    name: str
    price: int  # minor units; 0 is free
    currency: str
    capacity: int
    taken: int
    seats_left: int
    valid_from: datetime | None
    valid_until: datetime | None
    question: str | None
    on_sale: bool  # within the sale window now (seats may still be gone)

    @property
    def is_free(self) -> bool:
        return self.price == 0


@dataclass(frozen=True, kw_only=True)
class ReservationView:
    """What a "payment processing" page polls: it is done when ``registration_id`` is set."""

    reservation_id: str
    user_id: str
    event_id: str
    tier_id: str
    status: ReservationStatus
    amount: int
    currency: str
    expires_at: datetime
    checkout_id: str | None
    checkout_url: str | None
    registration_id: str | None


@dataclass(frozen=True, kw_only=True)
class RegistrationView:
    registration_id: str
    user_id: str
    event_id: str
    event_name: str
    tier_id: str
    tier_name: str
    price: int
    currency: str
    answers: Mapping[str, str]
    reservation_id: str | None  # None for a free tier
    created_at: datetime


def on_sale(tier: Tier, now: datetime) -> bool:
    """The sale window is [valid_from, valid_until); an open end is unbounded."""
    return in_sale_window(tier.valid_from, tier.valid_until, now)


def in_sale_window(
    valid_from: datetime | None, valid_until: datetime | None, now: datetime
) -> bool:
    if valid_from is not None and now < valid_from:
        return False
    return valid_until is None or now < valid_until


_TIER_COLUMNS = (
    Tier.id, Tier.event_id, Event.name, Tier.name, Tier.price, Tier.currency, Tier.capacity,
    Tier.taken, Tier.valid_from, Tier.valid_until, Tier.question,
)  # fmt: skip


def tier_views(session: Session, event_id: str, now: datetime) -> list[TierView]:
    rows = session.execute(
        select(*_TIER_COLUMNS)
        .join(Event, Event.id == Tier.event_id)
        .where(Tier.event_id == event_id)
        .order_by(Tier.price, Tier.id)
    )
    return [_tier_view(row, now) for row in rows]


#: Built once: building a statement costs more CPU than running it.
_TIER_OF_EVENT = (
    select(*_TIER_COLUMNS)
    .join(Event, Event.id == Tier.event_id)
    .where(Tier.id == bindparam("tier_id"), Tier.event_id == bindparam("event_id"))
)


def tier_view(
    connection: Connection, event_id: str, tier_id: str, now: datetime
) -> TierView | None:
    """One tier of the event with the event's name, in one plain query (no lock, no ORM)."""
    params = {"tier_id": tier_id, "event_id": event_id}
    row = connection.execute(_TIER_OF_EVENT, params).first()
    return None if row is None else _tier_view(row, now)


_TIER_OF_EVENT_AT_ONCE = SingleStatement(_TIER_OF_EVENT)


def tier_view_at_once(
    engine: Engine, event_id: str, tier_id: str, now: datetime
) -> TierView | None:
    """``tier_view`` for PostgreSQL, outside a transaction block (see single.py)."""
    row = _TIER_OF_EVENT_AT_ONCE.first(engine, {"tier_id": tier_id, "event_id": event_id})
    return None if row is None else _tier_view(row, now)


def _tier_view(row: Row[*tuple[Any, ...]] | tuple[Any, ...], now: datetime) -> TierView:
    (tier_id, event_id, event_name, name, price, currency, capacity, taken, valid_from,
     valid_until, question) = row  # fmt: skip
    return TierView(
        tier_id=tier_id, event_id=event_id, event_name=event_name, name=name, price=price,
        currency=currency, capacity=capacity, taken=taken, seats_left=max(capacity - taken, 0),
        valid_from=valid_from, valid_until=valid_until, question=question,
        on_sale=in_sale_window(valid_from, valid_until, now),
    )  # fmt: skip


def reservation_view(session: Session, reservation_id: str) -> ReservationView | None:
    reservation = session.get(Reservation, reservation_id)
    if reservation is None:
        return None
    registration_id = session.scalar(
        select(Registration.id).where(Registration.reservation_id == reservation_id)
    )
    return ReservationView(
        reservation_id=reservation.id, user_id=reservation.user_id,
        event_id=reservation.event_id, tier_id=reservation.tier_id,
        status=ReservationStatus(reservation.status), amount=reservation.amount,
        currency=reservation.currency, expires_at=reservation.expires_at,
        checkout_id=reservation.checkout_id, checkout_url=reservation.checkout_url,
        registration_id=registration_id,
    )  # fmt: skip


def registration_views(session: Session, user_id: str) -> list[RegistrationView]:
    rows = session.execute(
        select(Registration, Event, Tier)
        .join(Event, Event.id == Registration.event_id)
        .join(Tier, Tier.id == Registration.tier_id)
        .where(Registration.user_id == user_id)
        .order_by(Registration.created_at, Registration.id)
    )
    return [
        RegistrationView(
            registration_id=registration.id,
            user_id=registration.user_id,
            event_id=event.id,
            event_name=event.name,
            tier_id=tier.id,
            tier_name=tier.name,
            price=tier.price,
            currency=tier.currency,
            answers=MappingProxyType(dict(registration.answers)),
            reservation_id=registration.reservation_id,
            created_at=registration.created_at,
        )
        for registration, event, tier in rows
    ]
