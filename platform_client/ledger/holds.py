"""Seats: take one (a hold for a paid tier, a registration for a free one) and give it back.

These functions run inside the caller's transaction and never commit; ``Ledger`` owns the
transactions. Locks are always taken in one order, a reservation before its tier (a paid
callback: its reservation, then the buyer's live hold, then a tier), so that the ledger's own
transactions never deadlock each other.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import JSON, Engine, Row, String, bindparam, insert, select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from platform_client.ledger.errors import AlreadyRegistered, SaleClosed, SoldOut, UnknownTier
from platform_client.ledger.models import (
    Event,
    Registration,
    Reservation,
    ReservationStatus,
    Tier,
    UTCDateTime,
    new_id,
)
from platform_client.ledger.rows import lock_tier, seat_state, set_taken
from platform_client.ledger.single import SingleStatement
from platform_client.ledger.views import in_sale_window

log = logging.getLogger(__name__)

_INSERT_HOLD = insert(Reservation)  # built once
MAX_ORDER_NAME = 200  # the payment service's limit on orderName
DEADLOCK_DETECTED = "40P01"  # PostgreSQL's SQLSTATE


@dataclass(frozen=True, kw_only=True)
class SeatRequest:
    """What a buyer asked for; ``answers`` are the form's answers, snapshotted on the hold."""

    user_id: str
    event_id: str
    tier_id: str
    answers: Mapping[str, str] = field(default_factory=dict)
    email: str | None = None
    order_name: str | None = None  # default "{event name} - {tier name}"


@dataclass(frozen=True, kw_only=True)
class Hold:
    """A pending reservation as stored: everything the checkout request is derived from."""

    reservation_id: str
    user_id: str
    event_id: str
    tier_id: str
    amount: int
    currency: str
    provider: str
    order_name: str
    email: str | None
    expires_at: datetime
    checkout_id: str | None
    checkout_url: str | None

    @classmethod
    def of(cls, reservation: Reservation) -> Hold:
        return cls(
            reservation_id=reservation.id,
            user_id=reservation.user_id,
            event_id=reservation.event_id,
            tier_id=reservation.tier_id,
            amount=reservation.amount,
            currency=reservation.currency,
            provider=reservation.provider,
            order_name=reservation.order_name,
            email=reservation.email,
            expires_at=reservation.expires_at,
            checkout_id=reservation.checkout_id,
            checkout_url=reservation.checkout_url,
        )


@dataclass(frozen=True, kw_only=True)
class SeatTaken:
    """Either a registration (a free tier, confirmed at once) or a hold to be paid."""

    registration_id: str | None = None
    hold: Hold | None = None
    existing: bool = False  # the hold is the user's earlier one (a double submit)


def lock_reservation(session: Session, reservation_id: str) -> Reservation | None:
    statement = (
        select(Reservation)
        .where(Reservation.id == reservation_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return session.scalars(statement).one_or_none()


def pending_hold(session: Session, user_id: str, event_id: str) -> Reservation | None:
    """The user's live hold for the event, row-locked (at most one: the partial unique index)."""
    statement = (
        select(Reservation)
        .where(
            Reservation.user_id == user_id,
            Reservation.event_id == event_id,
            Reservation.status == ReservationStatus.PENDING_PAYMENT,
        )
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return session.scalars(statement).one_or_none()


def registration_of(session: Session, user_id: str, event_id: str) -> str | None:
    return session.scalar(
        select(Registration.id).where(
            Registration.user_id == user_id, Registration.event_id == event_id
        )
    )


def registered_meanwhile(session: Session, request: SeatRequest) -> bool:
    """Whether the user got a registration for the event while this transaction waited on a
    lock (PostgreSQL, READ COMMITTED: each statement sees what committed before it began).

    The plain read saw the user holding a seat, or not registered; then the paid callback of
    that hold committed while this waited for the hold's row lock, or a late payment re-took a
    seat while this waited for the tier's. Without this check the user would get a second
    seat, and a checkout whose payment the ledger refuses (and the service refunds). One
    indexed read, on PostgreSQL's less usual path (the usual one is hold_seat_at_once)."""
    return registration_of(session, request.user_id, request.event_id) is not None


def _waits_on_locks(session: Session) -> bool:
    # SQLite runs the whole transaction under its write lock (BEGIN IMMEDIATE): nothing
    # another writer commits can appear in the middle of it.
    return session.get_bind().dialect.name != "sqlite"


def hold_seat(
    session: Session, request: SeatRequest, *, provider: str, now: datetime, ttl: timedelta
) -> SeatTaken:
    """Take a seat of the tier under its row lock, or say why not.

    Raises AlreadyRegistered, UnknownTier, SaleClosed or SoldOut. A user with a live hold for
    the event gets that hold back (``existing=True``) whatever tier they asked for: one hold
    per user and event. A concurrent submit of the same user can still make the INSERT fail on
    the partial unique index (IntegrityError): the caller looks the winner's hold up.

    The fast path: one plain read (``seat_state``) answers AlreadyRegistered, SaleClosed and
    SoldOut without taking a lock. That answer is a valid linearization: the read is one
    statement on one snapshot, at which the tier was full (or closed) and the user had no live
    hold. A hold released a moment later is no different from this buyer arriving a moment
    earlier. A seat is only ever taken under the tier's row lock, which re-checks everything.
    """
    state = seat_state(session, request.user_id, request.event_id, request.tier_id)
    if state is None or state.event_id != request.event_id:
        return _hold_seat_locked(session, request, provider, now, ttl, None)  # says why not
    if state.registered:
        raise AlreadyRegistered("the user is already registered for this event")
    if not state.holding:
        if not in_sale_window(state.valid_from, state.valid_until, now):
            raise SaleClosed(f"tier {request.tier_id!r} is not on sale now")
        if state.taken >= state.capacity:
            raise SoldOut(f"tier {request.tier_id!r} is sold out")
    return _hold_seat_locked(session, request, provider, now, ttl, state)


def _hold_seat_locked(
    session: Session, request: SeatRequest, provider: str, now: datetime, ttl: timedelta,
    state: Row[*tuple[Any, ...]] | None,
) -> SeatTaken:  # fmt: skip
    """The guarded part: the user's hold (if the plain read saw one), then the tier's row lock
    and every check again. ``state`` None: the plain read found nothing usable, check all."""
    if state is None and registration_of(session, request.user_id, request.event_id) is not None:
        raise AlreadyRegistered("the user is already registered for this event")
    if state is None or state.holding:
        earlier = pending_hold(session, request.user_id, request.event_id)
        if earlier is not None:
            if earlier.expires_at > now:
                return SeatTaken(hold=Hold.of(earlier), existing=True)
            release_hold(session, earlier, ReservationStatus.EXPIRED)  # not swept yet
            session.flush()  # out of the partial unique index before the new INSERT
    # A hold made by a concurrent submit after the plain read fails the INSERT below on the
    # partial unique index; the caller then answers with that hold.
    tier = lock_tier(session, request.tier_id)
    if tier is None or tier.event_id != request.event_id:
        raise UnknownTier(f"no tier {request.tier_id!r} for event {request.event_id!r}")
    if _waits_on_locks(session) and registered_meanwhile(session, request):
        raise AlreadyRegistered("the user is already registered for this event")
    if not in_sale_window(tier.valid_from, tier.valid_until, now):
        raise SaleClosed(f"tier {tier.id!r} is not on sale now")
    if tier.taken >= tier.capacity:
        raise SoldOut(f"tier {tier.id!r} is sold out")
    set_taken(session, tier.id, tier.taken + 1)
    answers = dict(request.answers)
    if tier.price == 0:
        registration = Registration(
            id=new_id("reg"),
            user_id=request.user_id,
            event_id=request.event_id,
            tier_id=tier.id,
            reservation_id=None,
            answers=answers,
        )
        session.add(registration)
        session.flush()
        return SeatTaken(registration_id=registration.id)
    event_name = state.event_name if state is not None else _event_name(session, tier.event_id)
    hold = Hold(
        reservation_id=new_id("res"), user_id=request.user_id, event_id=request.event_id,
        tier_id=tier.id, amount=tier.price, currency=tier.currency, provider=provider,
        order_name=request.order_name or _order_name(event_name, tier.name),
        email=request.email,
        # Whole seconds, as the payment service stores expiresAt: a replayed create then
        # sends a byte-identical body, and the checkout never outlives the hold.
        expires_at=(now + ttl).replace(microsecond=0), checkout_id=None, checkout_url=None,
    )  # fmt: skip
    session.connection().execute(  # Core INSERT: no ORM object to build, flush or refresh
        _INSERT_HOLD,
        {
            "id": hold.reservation_id, "user_id": hold.user_id, "event_id": hold.event_id,
            "tier_id": hold.tier_id, "status": ReservationStatus.PENDING_PAYMENT,
            "amount": hold.amount, "currency": hold.currency, "provider": hold.provider,
            "order_name": hold.order_name, "answers": answers, "email": hold.email,
            "expires_at": hold.expires_at,
        },
    )  # fmt: skip
    return SeatTaken(hold=hold)


# PostgreSQL's usual paid start in one statement: the tier's conditional UPDATE takes the seat
# under its row lock (a concurrent UPDATE waits, then re-checks `taken < capacity` on the new
# row), and the hold is inserted from the row it returns. Only our own names and literals
# are formatted into the SQL; every value is bound.
_HOLD_AT_ONCE_SQL = f"""
WITH seat AS (
    UPDATE ledger_tiers AS t SET taken = t.taken + 1
    WHERE t.id = :tier_id AND t.event_id = :event_id AND t.price > 0 AND t.taken < t.capacity
      AND (t.valid_from IS NULL OR t.valid_from <= :now)
      AND (t.valid_until IS NULL OR :now < t.valid_until)
      AND NOT EXISTS (SELECT FROM ledger_registrations AS r
                      WHERE r.user_id = :user_id AND r.event_id = :event_id)
      AND NOT EXISTS (SELECT FROM ledger_reservations AS h
                      WHERE h.user_id = :user_id AND h.event_id = :event_id
                        AND h.status = '{ReservationStatus.PENDING_PAYMENT.value}')
    RETURNING t.id, t.price, t.currency, t.name,
              (SELECT e.name FROM ledger_events AS e WHERE e.id = t.event_id) AS event_name
)
INSERT INTO ledger_reservations (id, user_id, event_id, tier_id, status, amount, currency,
                                 provider, order_name, answers, email, expires_at, created_at,
                                 updated_at)
SELECT :reservation_id, :user_id, :event_id, seat.id,
       '{ReservationStatus.PENDING_PAYMENT.value}', seat.price, seat.currency, :provider,
       COALESCE(NULLIF(:order_name, ''), LEFT(CASE WHEN seat.event_name <> ''
                                       THEN seat.event_name || ' - ' || seat.name
                                       ELSE seat.name END, {MAX_ORDER_NAME})),
       :answers, :email, :expires_at, :now, :now
FROM seat
RETURNING amount, currency, order_name"""  # noqa: S608
_HOLD_AT_ONCE_TYPES = (
    bindparam("now", type_=UTCDateTime()), bindparam("expires_at", type_=UTCDateTime()),
    bindparam("answers", type_=JSON()), bindparam("order_name", type_=String()),
    bindparam("email", type_=String()),
)  # fmt: skip
_HOLD_AT_ONCE = SingleStatement(text(_HOLD_AT_ONCE_SQL).bindparams(*_HOLD_AT_ONCE_TYPES))


def hold_seat_at_once(
    engine: Engine,
    request: SeatRequest,
    *,
    provider: str,
    now: datetime,
    ttl: timedelta,
    hold_id: str | None = None,
) -> Hold | None:
    """PostgreSQL: take a seat of a paid tier and insert the hold in one statement outside
    a transaction block (one round trip, its own transaction: see single.py), or change nothing and
    return None. None means something is not usual (sold out, off sale, a free or unknown
    tier, the user registered or holding, a concurrent submit of the same user): the caller
    then runs ``hold_seat`` in a transaction, which says exactly why or handles it.
    ``hold_id``, the new reservation's id, lets the caller know the hold for its own if the
    general path finds it (this statement committed, then its connection died).

    Its NOT EXISTS reads the statement's snapshot, and after waiting for the tier's lock
    PostgreSQL re-checks only the tier's row: a late payment of the same buyer that re-takes a
    seat of the same tier in that instant is not seen, and the buyer, registered by then, gets
    a hold. The start's next statement, which stores the checkout on the hold, does see the
    registration (services.store_checkout_statement): that hold then gives its seat back and
    the buyer is told they are registered, at no extra round trip on the usual path."""
    hold_id, expires_at = hold_id or new_id("res"), (now + ttl).replace(microsecond=0)
    try:
        row = _HOLD_AT_ONCE.first(
            engine,
            {
                "tier_id": request.tier_id, "event_id": request.event_id,
                "user_id": request.user_id, "reservation_id": hold_id, "provider": provider,
                "order_name": request.order_name, "answers": dict(request.answers),
                "email": request.email, "expires_at": expires_at, "now": now,
            },
        )  # fmt: skip
    except IntegrityError:  # the same user's concurrent hold won the partial unique index
        return None
    except DBAPIError as exc:
        if exc.connection_invalidated:
            # The connection died under the statement (a restart, pg_terminate_backend) after
            # the pool's checkout check passed it. Whether the hold went in is unknown, and
            # need not be: the general path, on a fresh connection, takes the seat, or finds
            # this hold (by its id) if it did go in.
            extra = {"error": type(exc.orig).__name__}
            log.warning("ledger.hold_at_once_disconnected", extra=extra)
            return None
        # A deadlock: this statement locks the tier and then meets the index entry of the same
        # user's concurrent hold, against the documented order (reservation, then tier), if
        # a release of that hold runs in that instant. PostgreSQL undid it; the general path
        # takes the locks in order.
        if getattr(exc.orig, "sqlstate", None) == DEADLOCK_DETECTED:
            return None
        raise
    if row is None:
        return None
    amount, currency, order_name = row
    return Hold(
        reservation_id=hold_id, user_id=request.user_id, event_id=request.event_id,
        tier_id=request.tier_id, amount=amount, currency=currency, provider=provider,
        order_name=order_name, email=request.email, expires_at=expires_at,
        checkout_id=None, checkout_url=None,
    )  # fmt: skip


def release_hold(session: Session, reservation: Reservation, status: ReservationStatus) -> bool:
    """Give a pending hold's seat back; False (nothing done) if it no longer holds one.
    The caller holds the reservation's row lock."""
    if reservation.status != ReservationStatus.PENDING_PAYMENT:
        return False
    reservation.status = status
    session.execute(update(Tier).where(Tier.id == reservation.tier_id).values(taken=Tier.taken - 1))
    return True


def retake_seat(session: Session, tier_id: str) -> bool:
    """Take a seat again for a late payment, under the tier's row lock; False when full."""
    tier = lock_tier(session, tier_id)
    if tier is None or tier.taken >= tier.capacity:
        return False
    set_taken(session, tier_id, tier.taken + 1)
    return True


def _event_name(session: Session, event_id: str) -> str:
    return session.scalar(select(Event.name).where(Event.id == event_id)) or ""


def _order_name(event_name: str, tier_name: str) -> str:
    name = f"{event_name} - {tier_name}" if event_name else tier_name
    return name[:MAX_ORDER_NAME]
