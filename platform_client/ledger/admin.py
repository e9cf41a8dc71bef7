"""Housekeeping: seed events and tiers, expire holds that outlived their TTL, delete a tier.

Like holds.py, these run inside the caller's transaction and lock a reservation before its tier.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from platform_client.ledger.errors import TierHasLiveHolds, TierHasRegistrations, UnknownTier
from platform_client.ledger.holds import release_hold
from platform_client.ledger.models import Event, Registration, Reservation, ReservationStatus, Tier
from platform_client.ledger.rows import lock_tier

_PENDING = Reservation.status == ReservationStatus.PENDING_PAYMENT


def add_event(session: Session, event_id: str, name: str, starts_at: datetime | None) -> bool:
    """Add an event unless one with that id exists (so seeding can run at every start)."""
    if session.get(Event, event_id) is not None:
        return False
    session.add(Event(id=event_id, name=name, starts_at=starts_at))
    return True


def add_tier(session: Session, tier: Tier) -> bool:
    """Add a tier unless one with its id exists; ``taken`` starts at 0."""
    if session.get(Tier, tier.id) is not None:
        return False
    tier.taken = 0
    session.add(tier)
    return True


def overdue_holds(session: Session, now: datetime, limit: int) -> Sequence[str]:
    """Ids of pending holds whose deadline has passed, oldest first."""
    return session.scalars(
        select(Reservation.id)
        .where(_PENDING, Reservation.expires_at <= now)
        .order_by(Reservation.expires_at)
        .limit(limit)
    ).all()


def expire_hold(session: Session, reservation_id: str, now: datetime) -> Reservation | None:
    """Expire one overdue hold and return its seat; None if it is not (or no longer) overdue,
    or is locked right now by its payment callback, which then decides."""
    reservation = session.scalars(
        select(Reservation)
        .where(Reservation.id == reservation_id, Reservation.expires_at <= now)
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    ).one_or_none()
    if reservation is None or not release_hold(session, reservation, ReservationStatus.EXPIRED):
        return None
    return reservation


def delete_tier(session: Session, tier_id: str) -> None:
    """Delete a tier and its released holds. Raises UnknownTier, TierHasLiveHolds while a hold
    waits for payment, TierHasRegistrations once anyone registered (their rows need it)."""
    of_tier = Reservation.tier_id == tier_id
    session.execute(select(Reservation.id).where(of_tier).with_for_update())  # the lock order
    if lock_tier(session, tier_id) is None:
        raise UnknownTier(f"no tier {tier_id!r}")
    if session.scalar(select(func.count(Reservation.id)).where(of_tier, _PENDING)):
        raise TierHasLiveHolds(f"tier {tier_id!r} has holds waiting for payment")
    if session.scalar(select(func.count(Registration.id)).where(Registration.tier_id == tier_id)):
        raise TierHasRegistrations(f"tier {tier_id!r} has registrations")
    session.execute(delete(Reservation).where(of_tier))
    session.execute(delete(Tier).where(Tier.id == tier_id))
