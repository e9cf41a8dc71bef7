"""A late payment of a released hold while the buyer holds a newer one (SQLite and PostgreSQL):
the paid hold is confirmed, the newer hold released, and a payment of it refunded."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from platform_client.ledger import (
    Ledger,
    Reservation,
    ReservationStatus,
    SoldOut,
    holds,
    payments,
)
from platform_client.receiver import RejectCallback
from shared_contracts.events import EventType
from tests.platform_client.ledger.conftest import Clock
from tests.platform_client.ledger.helpers import (
    EVENT,
    FULL,
    USD,
    about,
    counts,
    delivered,
    paid,
    snapshot,
    taken,
)
from tests.platform_client.ledger.test_races import delivering, warm_up
from tests.races import race

PAUSE = 0.3  # how long the paid callback keeps the newer hold it read, in the races below
RACER_DELAY = 0.1  # the racer starts inside that pause


def hold(ledger: Ledger, user: str = "u_1", tier: str = FULL) -> str:
    started = ledger.start_registration(user, EVENT, tier, {})
    assert started.reservation_id
    return started.reservation_id


def status(ledger: Ledger, reservation_id: str) -> ReservationStatus:
    view = ledger.reservation(reservation_id)
    assert view is not None
    return view.status


def rejected(ledger: Ledger, event) -> RejectCallback:  # type: ignore[no-untyped-def]
    with pytest.raises(RejectCallback) as raised:
        ledger.handle_callback(event)
    return raised.value


def swept_then_started_again(ledger: Ledger, clock: Clock, tier: str = FULL) -> tuple[str, str]:
    """u_1's first hold (checkout A) is swept; u_1 starts again and holds ``tier`` (checkout B)."""
    first = hold(ledger)
    clock.advance(minutes=11)
    assert ledger.sweep_expired_holds() == 1
    return first, hold(ledger, tier=tier)


def test_a_late_payment_releases_the_buyers_newer_hold(
    ledger: Ledger, engine: Engine, clock: Clock
):
    first, second = swept_then_started_again(ledger, clock)
    ledger.handle_callback(paid(ledger, first, late=True))

    assert status(ledger, first) is ReservationStatus.CONFIRMED
    assert status(ledger, second) is ReservationStatus.RELEASED
    assert taken(engine, FULL) == 1 and counts(engine) == (1, 1)
    hold(ledger, "u_2")  # the second of two seats is free for another buyer
    with pytest.raises(SoldOut):
        hold(ledger, "u_3")

    # The buyer pays checkout B too (it stays open at the service): refunded, nothing changes.
    before = snapshot(engine)
    rejection = rejected(ledger, paid(ledger, second))
    assert (rejection.code, rejection.status) == ("already_registered", 409)
    assert snapshot(engine) == before


def test_a_late_payment_into_a_full_tier_takes_the_seat_of_the_newer_hold(
    ledger: Ledger, engine: Engine, clock: Clock
):
    first, second = swept_then_started_again(ledger, clock)
    hold(ledger, "u_2")  # both seats held now: the newer hold's and u_2's
    ledger.handle_callback(paid(ledger, first, late=True))  # was reservation_expired: refunded
    assert status(ledger, first) is ReservationStatus.CONFIRMED
    assert status(ledger, second) is ReservationStatus.RELEASED
    assert taken(engine, FULL) == 2 and counts(engine) == (1, 1)


def test_a_late_payment_releases_a_newer_hold_of_another_tier(
    ledger: Ledger, engine: Engine, clock: Clock
):
    first, second = swept_then_started_again(ledger, clock, tier=USD)
    ledger.handle_callback(paid(ledger, first, late=True))
    assert status(ledger, second) is ReservationStatus.RELEASED
    assert (taken(engine, FULL), taken(engine, USD)) == (1, 0)


def test_a_late_payment_refused_for_a_full_tier_keeps_the_newer_hold(
    ledger: Ledger, engine: Engine, clock: Clock
):
    first, second = swept_then_started_again(ledger, clock, tier=USD)
    hold(ledger, "u_2")
    hold(ledger, "u_3")  # the first hold's tier is full
    before = snapshot(engine)
    rejection = rejected(ledger, paid(ledger, first, late=True))
    assert (rejection.code, rejection.status) == ("reservation_expired", 409)
    assert snapshot(engine) == before  # the newer hold's release was rolled back with it
    assert status(ledger, second) is ReservationStatus.PENDING_PAYMENT


def slowed(locked: bool) -> Callable[[Session, str, str], Reservation | None]:
    """record_paid's read of the buyer's newer hold, then a pause before it acts on it:
    row-locked as in the ledger, or (``locked=False``, the control) a plain read."""

    def pending_hold(session: Session, user_id: str, event_id: str) -> Reservation | None:
        if locked:
            found = holds.pending_hold(session, user_id, event_id)
        else:
            found = session.scalars(
                select(Reservation).filter_by(
                    user_id=user_id, event_id=event_id, status=ReservationStatus.PENDING_PAYMENT
                )
            ).one_or_none()
        time.sleep(PAUSE)
        return found

    return pending_hold


def ending_of_the_newer_hold(
    ledger: Ledger, clock: Clock, second: str, how: str
) -> Callable[[], object]:
    """The other way the newer hold can end at the same moment: its own callback, or the sweeper."""
    if how == "sweeper":
        clock.advance(minutes=11)  # the newer hold is overdue too
        return ledger.sweep_expired_holds
    event = delivered(EventType(how), **about(ledger, second))
    return lambda: ledger.handle_callback(event)


def race_late_payment_with(ledger: Ledger, clock: Clock, how: str) -> tuple[str, str]:
    """u_1's late payment of the first hold, and the end of the newer hold, at once; u_2
    holds the tier's other seat meanwhile, so that a seat given back twice shows in ``taken``."""
    first, second = swept_then_started_again(ledger, clock)
    late_payment = paid(ledger, first, late=True)
    ending = ending_of_the_newer_hold(ledger, clock, second, how)
    hold(ledger, "u_2")
    warm_up(ledger.engine, 2)

    def work(i: int) -> None:
        if i == 0:
            ledger.handle_callback(late_payment)
        else:
            time.sleep(RACER_DELAY)  # after the payment has read the newer hold, before it acts
            ending()

    race(2, work, timeout=60)
    return first, second


ENDINGS = [EventType.EXPIRED.value, EventType.CANCELED.value, "sweeper"]


@pytest.mark.parametrize("how", ENDINGS)
def test_a_late_payment_racing_the_end_of_the_newer_hold_gives_its_seat_back_once(
    ledger: Ledger, engine: Engine, clock: Clock, monkeypatch: pytest.MonkeyPatch, how: str
):
    """The paid callback holds the newer hold's row lock from its read to its commit: the
    hold's own callback waits and then finds it no longer pending; the sweeper skips it."""
    monkeypatch.setattr(payments, "pending_hold", slowed(locked=True))
    first, second = race_late_payment_with(ledger, clock, how)
    assert status(ledger, first) is ReservationStatus.CONFIRMED
    assert status(ledger, second) is not ReservationStatus.PENDING_PAYMENT
    assert taken(engine, FULL) == 2 and counts(engine) == (1, 1)  # u_1's and u_2's seats


def test_control_without_the_lock_on_the_newer_hold_its_seat_is_given_back_twice(
    ledger: Ledger, engine: Engine, clock: Clock, monkeypatch: pytest.MonkeyPatch
):
    """Read without its row lock, the newer hold is released by its expiry callback inside the
    paid callback's pause, and then again by the paid callback: the tier counts one of its two
    seats free while u_1's registration and u_2's hold use both (PostgreSQL). SQLite: BEGIN
    IMMEDIATE serialises the two; that lock is SQLite's guard."""
    monkeypatch.setattr(payments, "pending_hold", slowed(locked=False))
    race_late_payment_with(ledger, clock, EventType.EXPIRED.value)
    assert counts(engine) == (1, 1)
    assert taken(engine, FULL) == (1 if engine.dialect.name == "postgresql" else 2)


def test_payments_of_both_checkouts_at_once_make_one_registration(
    ledger: Ledger, engine: Engine, clock: Clock
):
    """A's late payment and B's on-time one, racing: one confirms, the other is refunded, and
    the buyer is left with one seat and no live hold, whichever went first."""
    first, second = swept_then_started_again(ledger, clock)
    events = [paid(ledger, first, late=True), paid(ledger, second)]
    assert sorted(race(2, delivering(ledger, events))) == ["already_registered", "handled"]
    assert taken(engine, FULL) == 1 and counts(engine) == (1, 1)
    assert ReservationStatus.PENDING_PAYMENT not in {status(ledger, first), status(ledger, second)}
