"""Read models for pages: frozen copies of ledger rows, so no ORM object leaves a session."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType

from sqlalchemy import select
from sqlalchemy.orm import Session

from platform_client.ledger.models import Event, Registration, Reservation, ReservationStatus, Tier


@dataclass(frozen=True, kw_only=True)
class TierView:
    tier_id: str
    event_id: str
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
    if tier.valid_from is not None and now < tier.valid_from:
        return False
    return tier.valid_until is None or now < tier.valid_until


def tier_views(session: Session, event_id: str, now: datetime) -> list[TierView]:
    tiers = session.scalars(
        select(Tier).where(Tier.event_id == event_id).order_by(Tier.price, Tier.id)
    )
    return [
        TierView(
            tier_id=tier.id,
            event_id=tier.event_id,
            name=tier.name,
            price=tier.price,
            currency=tier.currency,
            capacity=tier.capacity,
            taken=tier.taken,
            seats_left=max(tier.capacity - tier.taken, 0),
            valid_from=tier.valid_from,
            valid_until=tier.valid_until,
            question=tier.question,
            on_sale=on_sale(tier, now),
        )
        for tier in tiers
    ]


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
