"""A second submit while the buyer's hold is being paid (SQLite and PostgreSQL): it waits for the
hold, finds the buyer registered, and takes no second seat."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from platform_client.callbacks import CallbackEvent
from platform_client.client import PaymentServiceClient
from platform_client.ledger import (
    AlreadyRegistered,
    Ledger,
    Reservation,
    ReservationStatus,
    holds,
    payments,
    services,
)
from platform_client.ledger.single import SingleStatement
from shared_contracts.checkouts import CheckoutStatus
from tests.platform_client.ledger.conftest import Clock
from tests.platform_client.ledger.helpers import EVENT, FULL, USD, counts, paid, taken
from tests.platform_client.ledger.test_races import warm_up
from tests.races import race

PAUSE = 0.4  # how long the paid callback keeps the hold's row lock before it confirms it
RACER_DELAY = 0.15  # the second submit starts inside that pause


def slowed(lock_reservation: Callable[..., Reservation | None]) -> Callable[..., object]:
    """record_paid's row lock on the hold, then a pause before it confirms the registration."""

    def locked_then_paused(session: Session, reservation_id: str) -> Reservation | None:
        found = lock_reservation(session, reservation_id)
        time.sleep(PAUSE)
        return found

    return locked_then_paused


def pay_while_submitting_again(ledger: Ledger, tier: str) -> list[str]:
    """u_1's hold of FULL is paid; inside the callback's pause u_1 submits ``tier``. Answers:
    "paid" for the callback, and the submit's "already_registered" or its reservation id."""
    first = ledger.start_registration("u_1", EVENT, FULL, {}).reservation_id
    assert first
    return paying_while_submitting(ledger, paid(ledger, first), tier)


def paying_while_submitting(ledger: Ledger, event: CallbackEvent, tier: str) -> list[str]:
    """The race: ``event`` delivered, and inside its pause u_1 submits ``tier``. Answers:
    "paid" for the callback, and the submit's "already_registered" or its reservation id."""
    warm_up(ledger.engine, 2)

    def work(i: int) -> str:
        if i == 0:
            ledger.handle_callback(event)
            return "paid"
        time.sleep(RACER_DELAY)  # its first read sees u_1 not yet registered
        try:
            started = ledger.start_registration("u_1", EVENT, tier, {})
        except AlreadyRegistered:
            return "already_registered"
        assert started.reservation_id
        return started.reservation_id

    return race(2, work, timeout=60)


def holds_of_u1(engine: Engine, status: ReservationStatus | None = None) -> int:
    """u_1's reservations, or those of ``status`` only."""
    query = select(func.count()).select_from(Reservation).where(Reservation.user_id == "u_1")
    if status is not None:
        query = query.where(Reservation.status == status)
    with Session(engine) as session:
        return session.scalar(query) or 0


@pytest.mark.parametrize("tier", [FULL, USD])
def test_a_submit_waiting_on_the_hold_being_paid_finds_the_buyer_registered(
    ledger: Ledger, engine: Engine, monkeypatch: pytest.MonkeyPatch, tier: str
):
    monkeypatch.setattr(payments, "lock_reservation", slowed(payments.lock_reservation))
    assert pay_while_submitting_again(ledger, tier) == ["paid", "already_registered"]
    assert counts(engine) == (1, 1)
    assert holds_of_u1(engine) == 1  # the paid one, confirmed
    assert (taken(engine, FULL), taken(engine, USD)) == (1, 0)


def without_the_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    """The control's ledger: no registration check after the locks (general path), and a
    checkout stored on a hold whatever became of its buyer (the one-statement path)."""
    monkeypatch.setattr(holds, "registered_meanwhile", lambda session, request: False)
    unguarded = services.store_checkout_statement(unregistered_only=False)
    monkeypatch.setattr(services, "_STORE_CHECKOUT", unguarded)
    monkeypatch.setattr(services, "_STORE_CHECKOUT_AT_ONCE", SingleStatement(unguarded))


def test_control_without_the_check_after_the_locks_the_buyer_gets_a_second_seat(
    ledger: Ledger, engine: Engine, monkeypatch: pytest.MonkeyPatch
):
    """PostgreSQL: the submit read u_1 as holding, waited for the hold's row lock, found it
    no longer pending and took a seat of USD for a registered buyer. SQLite: BEGIN IMMEDIATE
    runs the submit after the callback's commit, and its plain read sees the registration."""
    monkeypatch.setattr(payments, "lock_reservation", slowed(payments.lock_reservation))
    without_the_checks(monkeypatch)
    answers = pay_while_submitting_again(ledger, USD)
    if engine.dialect.name == "postgresql":
        assert answers[1].startswith("res_")
        assert holds_of_u1(engine) == 2 and taken(engine, USD) == 1
    else:
        assert answers == ["paid", "already_registered"]
        assert holds_of_u1(engine) == 1 and taken(engine, USD) == 0


def retake_paused(retake_seat: Callable[..., bool]) -> Callable[..., bool]:
    """A late payment's seat taken again under the tier's row lock, then a pause in it."""

    def taken_then_paused(session: Session, tier_id: str) -> bool:
        taken = retake_seat(session, tier_id)
        time.sleep(PAUSE)
        return taken

    return taken_then_paused


def late_payment_while_submitting_again(ledger: Ledger, clock: Clock) -> list[str]:
    """u_1's hold of FULL is swept; its late payment re-takes a seat of FULL and, inside the
    pause that follows (the tier's lock held), u_1 submits FULL again."""
    first = ledger.start_registration("u_1", EVENT, FULL, {}).reservation_id
    assert first
    clock.advance(minutes=11)
    assert ledger.sweep_expired_holds() == 1
    return paying_while_submitting(ledger, paid(ledger, first, late=True), FULL)


def pending_holds_of_u1(engine: Engine) -> int:
    return holds_of_u1(engine, ReservationStatus.PENDING_PAYMENT)


def test_a_submit_that_waited_on_a_late_payments_seat_gets_no_checkout(
    ledger: Ledger, engine: Engine, clock: Clock, monkeypatch: pytest.MonkeyPatch,
    payment_client: PaymentServiceClient,
):  # fmt: skip
    """PostgreSQL's one statement waited for the tier's lock and then held a second seat (its
    snapshot did not see the registration); the checkout's UPDATE, a new statement, does see
    it: the hold gives its seat back, its checkout is canceled, the buyer is told. SQLite
    runs the submit after the payment, whose registration its first read sees."""
    monkeypatch.setattr(payments, "retake_seat", retake_paused(payments.retake_seat))
    assert late_payment_while_submitting_again(ledger, clock) == ["paid", "already_registered"]
    assert counts(engine) == (1, 1) and taken(engine, FULL) == 1
    assert pending_holds_of_u1(engine) == 0
    with Session(engine) as session:
        others = session.scalars(
            select(Reservation).where(
                Reservation.user_id == "u_1", Reservation.status == ReservationStatus.RELEASED
            )
        ).all()
    if engine.dialect.name == "postgresql":
        [second] = others  # the one statement's hold, given back
        assert second.checkout_id is None
        statuses = {c.status for c in payment_client.find_checkouts(second.id)}
        assert statuses == {CheckoutStatus.CANCELED}
    else:
        assert others == []


def test_control_a_checkout_stored_whatever_became_of_the_buyer_leaves_a_second_seat(
    ledger: Ledger, engine: Engine, clock: Clock, monkeypatch: pytest.MonkeyPatch
):
    """Without the checks, the same race on PostgreSQL leaves the registered buyer a second
    hold with a payable checkout, and two seats of FULL taken."""
    monkeypatch.setattr(payments, "retake_seat", retake_paused(payments.retake_seat))
    without_the_checks(monkeypatch)
    answers = late_payment_while_submitting_again(ledger, clock)
    if engine.dialect.name == "postgresql":
        assert answers[1].startswith("res_")
        assert pending_holds_of_u1(engine) == 1 and taken(engine, FULL) == 2
    else:
        assert answers == ["paid", "already_registered"]
        assert pending_holds_of_u1(engine) == 0 and taken(engine, FULL) == 1
