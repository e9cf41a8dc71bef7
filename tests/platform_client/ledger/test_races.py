"""Races with real threads on both databases, each beside a control that removes its guard."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, Row, create_engine, func, select, text
from sqlalchemy.orm import Session, sessionmaker

from platform_client.callbacks import CallbackEvent
from platform_client.ledger import (
    Ledger,
    LedgerBase,
    Reservation,
    ReservationStatus,
    SeatRequest,
    SoldOut,
    Tier,
    hold_seat,
    hold_seat_at_once,
    holds,
    payments,
    utcnow,
)
from platform_client.ledger.single import SingleStatement
from platform_client.receiver import RejectCallback
from tests.platform_client.ledger.helpers import EVENT, USD, add_tier, counts, paid, taken
from tests.races import race

BUYERS, SEATS = 500, 100
PENDING_INDEX = "uq_ledger_reservations_pending_user_event"


def rush(engine: Engine, buyers: int, tier_id: str) -> Counter[str]:
    """``buyers`` distinct users each try to hold a seat of the tier at the same moment."""
    sessions = sessionmaker(engine)
    now = utcnow()

    def buy(i: int) -> str:
        request = SeatRequest(user_id=f"u_{i}", event_id=EVENT, tier_id=tier_id)
        try:
            with sessions.begin() as session:
                hold_seat(session, request, provider="sandbox", now=now, ttl=timedelta(minutes=10))
        except SoldOut:
            return "sold_out"
        return "held"

    return Counter(race(buyers, buy, timeout=120))


def pending(engine: Engine, **where: str) -> int:
    with Session(engine) as session:
        query = (
            select(func.count())
            .select_from(Reservation)
            .filter_by(status=ReservationStatus.PENDING_PAYMENT, **where)
        )
        return session.scalar(query) or 0


def test_500_buyers_for_100_seats_get_exactly_100_holds(ledger: Ledger, engine: Engine):
    add_tier(ledger, "tier_rush", SEATS)
    started = time.monotonic()
    outcome = rush(engine, BUYERS, "tier_rush")
    elapsed = time.monotonic() - started
    assert outcome == {"held": SEATS, "sold_out": BUYERS - SEATS}, elapsed
    assert taken(engine, "tier_rush") == SEATS == pending(engine, tier_id="tier_rush")
    print(f"rush of {BUYERS} for {SEATS} seats settled in {elapsed:.2f}s")


def _unlocked_tier(session: Session, tier_id: str) -> Row[*tuple[Any, ...]] | None:
    """The tier read without its guard: the same columns, no FOR UPDATE."""
    columns = (Tier.id, Tier.event_id, Tier.name, Tier.price, Tier.currency, Tier.capacity,
               Tier.taken, Tier.valid_from, Tier.valid_until)  # fmt: skip
    return session.execute(select(*columns).where(Tier.id == tier_id)).first()


def test_control_without_the_lock_the_same_rush_oversells(
    ledger: Ledger, engine: Engine, ledger_database_url: str, monkeypatch: pytest.MonkeyPatch
):
    """The guard is the tier's row lock (PostgreSQL) and BEGIN IMMEDIATE (SQLite, which has no
    row locks). Without them, buyers read the same ``taken`` and write ``taken + 1`` over each
    other: more holds than seats, while ``taken`` itself stays within capacity."""
    add_tier(ledger, "tier_rush", SEATS)
    monkeypatch.setattr(holds, "lock_tier", _unlocked_tier)
    unguarded = engine if engine.dialect.name != "sqlite" else create_engine(ledger_database_url)
    try:
        outcome = rush(unguarded, BUYERS, "tier_rush")
    finally:
        unguarded.dispose()
    assert outcome["held"] > SEATS, outcome
    assert pending(engine, tier_id="tier_rush") == outcome["held"]
    assert taken(engine, "tier_rush") <= SEATS


def rush_at_once(engine: Engine, buyers: int, tier_id: str) -> Counter[str]:
    """``buyers`` distinct users each try the one-statement hold (PostgreSQL) at once."""
    now = utcnow()
    warm_up(engine, 10)

    def buy(i: int) -> str:
        request = SeatRequest(user_id=f"u_{i}", event_id=EVENT, tier_id=tier_id)
        hold = hold_seat_at_once(
            engine, request, provider="sandbox", now=now, ttl=timedelta(minutes=10)
        )
        return "held" if hold is not None else "not_held"

    return Counter(race(buyers, buy, timeout=120))


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # PostgreSQL's path
def test_500_buyers_for_100_seats_in_one_statement_each_get_exactly_100_holds(
    ledger: Ledger, engine: Engine
):
    add_tier(ledger, "tier_rush", SEATS)
    outcome = rush_at_once(engine, BUYERS, "tier_rush")
    assert outcome == {"held": SEATS, "not_held": BUYERS - SEATS}
    assert taken(engine, "tier_rush") == SEATS == pending(engine, tier_id="tier_rush")


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_control_a_one_statement_hold_that_counts_from_its_snapshot_oversells(
    ledger: Ledger, engine: Engine, monkeypatch: pytest.MonkeyPatch
):
    """The guard is that the UPDATE checks and increments ``taken`` of the row it locked (a
    waiting UPDATE re-reads the row once the holder commits). Counting from the statement's
    snapshot instead (a subquery), the same rush writes stale ``taken + 1`` over each other."""
    add_tier(ledger, "tier_rush", SEATS)
    snapshot_taken = "(SELECT s.taken FROM ledger_tiers AS s WHERE s.id = t.id)"
    sql = holds._HOLD_AT_ONCE_SQL.replace(
        "SET taken = t.taken + 1", f"SET taken = {snapshot_taken} + 1"
    )
    sql = sql.replace("t.taken < t.capacity", f"{snapshot_taken} < t.capacity")
    assert sql.count(snapshot_taken) == 2
    unguarded = SingleStatement(text(sql).bindparams(*holds._HOLD_AT_ONCE_TYPES))
    monkeypatch.setattr(holds, "_HOLD_AT_ONCE", unguarded)
    outcome = rush_at_once(engine, BUYERS, "tier_rush")
    assert outcome["held"] > SEATS, outcome
    assert pending(engine, tier_id="tier_rush") == outcome["held"]
    assert taken(engine, "tier_rush") <= SEATS


def test_a_rush_through_start_registration_and_the_real_service(ledger: Ledger, engine: Engine):
    buyers, seats = BUYERS, SEATS
    add_tier(ledger, "tier_rush", seats)

    def buy(i: int) -> str:
        try:
            started = ledger.start_registration(f"u_{i}", EVENT, "tier_rush", {})
        except SoldOut:
            return "sold_out"
        return "checkout" if started.checkout_url else "none"

    outcome = Counter(race(buyers, buy, timeout=120))
    assert outcome == {"checkout": seats, "sold_out": buyers - seats}
    assert taken(engine, "tier_rush") == seats == pending(engine, tier_id="tier_rush")


def warm_up(engine: Engine, connections: int) -> None:
    """Open the pool's connections before a race, so that no thread is late for connecting."""
    opened = [engine.connect() for _ in range(connections)]
    for connection in opened:
        connection.close()


def double_submits(
    ledger: Ledger, tiers: list[str], *, tolerate: bool = False
) -> list[tuple[str | None, str | None]]:
    """One user submits once per entry of ``tiers``, all at the same moment. ``tolerate``: a
    submit that fails counts as (None, None) instead of failing the test (for controls)."""

    warm_up(ledger.engine, len(tiers))

    def submit(i: int) -> tuple[str | None, str | None]:
        try:
            started = ledger.start_registration("u_1", EVENT, tiers[i], {"size": "M"})
        except Exception:
            if not tolerate:
                raise
            return None, None  # e.g. two holds found where the index allows one
        return started.reservation_id, started.checkout_id

    return race(len(tiers), submit, timeout=120)


def test_concurrent_double_submits_hold_one_seat_and_share_one_checkout(
    ledger: Ledger, engine: Engine
):
    same_tier = double_submits(ledger, [USD] * 8)
    assert len(set(same_tier)) == 1 and None not in same_tier[0]
    assert pending(engine, user_id="u_1") == 1 and taken(engine, USD) == 1

    ledger.handle_callback(paid(ledger, same_tier[0][0] or ""))
    assert counts(engine) == (1, 1)


def test_concurrent_submits_for_different_tiers_still_make_one_hold(ledger: Ledger, engine: Engine):
    """Different tiers take different row locks, so here the partial unique index decides (on
    PostgreSQL; SQLite's single writer serialises them anyway): the losers' INSERT fails on
    it and they answer with the winner's hold and checkout."""
    tiers = [f"tier_{n}" for n in range(8)]
    for tier_id in tiers:
        add_tier(ledger, tier_id, 5)
    results = double_submits(ledger, tiers)
    assert len(set(results)) == 1 and None not in results[0]
    assert pending(engine, user_id="u_1") == 1
    assert sum(taken(engine, tier_id) for tier_id in tiers) == 1


@contextmanager
def without_pending_index(engine: Engine) -> Iterator[None]:
    index = next(i for i in LedgerBase.metadata.tables["ledger_reservations"].indexes
                 if i.name == PENDING_INDEX)  # fmt: skip
    with engine.begin() as connection:
        connection.execute(text(f'DROP INDEX "{PENDING_INDEX}"'))
    try:
        yield
    finally:
        with engine.begin() as connection:
            connection.execute(text('DELETE FROM "ledger_reservations"'))
            index.create(connection)


def test_control_without_the_pending_index_one_user_gets_several_holds(
    ledger: Ledger, engine: Engine, monkeypatch: pytest.MonkeyPatch
):
    """PostgreSQL: without the partial unique index, submits for different tiers each hold a
    seat. SQLite: BEGIN IMMEDIATE serialises the check and the insert, so even without the
    index there is one hold; that lock is SQLite's guard.

    PostgreSQL's one-statement hold checks for the user's hold and inserts within a
    millisecond; here it sleeps 50 ms between its snapshot and its commit, so that the
    harness races however fast the statement is."""
    tiers = [f"tier_{n}" for n in range(8)]
    for tier_id in tiers:
        add_tier(ledger, tier_id, 5)
    if engine.dialect.name == "postgresql":
        where = "WHERE t.id = :tier_id"
        slow = holds._HOLD_AT_ONCE_SQL.replace(
            where, "WHERE (SELECT true FROM pg_sleep(0.05)) AND t.id = :tier_id"
        )
        assert slow != holds._HOLD_AT_ONCE_SQL
        slow_statement = SingleStatement(text(slow).bindparams(*holds._HOLD_AT_ONCE_TYPES))
        monkeypatch.setattr(holds, "_HOLD_AT_ONCE", slow_statement)
    with without_pending_index(engine):
        double_submits(ledger, tiers, tolerate=True)
        holds_made = pending(engine, user_id="u_1")
        if engine.dialect.name == "postgresql":
            assert holds_made > 1
        else:
            assert holds_made == 1


def deliveries(ledger: Ledger, reservation_id: str) -> Callable[[int], str]:
    """Eight deliveries of one payment: four with one webhook-id, four with ids of their own.
    Each answers "handled" or the code it was rejected with."""
    events = [paid(ledger, reservation_id, msg_id="evt_same") for _ in range(4)]
    events += [paid(ledger, reservation_id, msg_id=f"evt_other_{n}") for n in range(4)]
    return delivering(ledger, events)


def delivering(ledger: Ledger, events: list[CallbackEvent]) -> Callable[[int], str]:
    """A race's work: thread i delivers events[i] and answers "handled" or the code it was
    rejected with (the pool warmed up first, so that connecting does not spread the start)."""
    warm_up(ledger.engine, len(events))

    def deliver(i: int) -> str:
        try:
            ledger.handle_callback(events[i])
        except RejectCallback as exc:
            return exc.code
        return "handled"

    return deliver


def test_concurrent_deliveries_of_one_payment_make_one_registration(ledger: Ledger, engine: Engine):
    reservation_id = ledger.start_registration("u_1", EVENT, USD, {}).reservation_id
    assert reservation_id
    assert race(8, deliveries(ledger, reservation_id)) == ["handled"] * 8
    assert counts(engine) == (1, 1) and taken(engine, USD) == 1
    view = ledger.reservation(reservation_id)
    assert view is not None and view.status is ReservationStatus.CONFIRMED


def test_control_without_the_reservation_lock_deliveries_collide(
    ledger: Ledger, engine: Engine, monkeypatch: pytest.MonkeyPatch
):
    """Without the reservation's row lock the same deliveries run side by side on PostgreSQL:
    they collide on the unique indexes, or one reads the registration another just committed
    and rejects a good payment as already_registered (which would refund it). SQLite:
    BEGIN IMMEDIATE serialises them, so neither happens; that lock is SQLite's guard."""
    collisions: list[str] = []
    settle = payments.settle_paid_conflict

    def counting(session: Session, event):  # type: ignore[no-untyped-def]
        collisions.append(event.event_id)
        return settle(session, event)

    def unlocked(session: Session, reservation_id: str) -> Reservation | None:
        return session.get(Reservation, reservation_id)

    reservation_id = ledger.start_registration("u_1", EVENT, USD, {}).reservation_id
    assert reservation_id
    monkeypatch.setattr(payments, "lock_reservation", unlocked)
    monkeypatch.setattr(payments, "settle_paid_conflict", counting)
    answers = race(8, deliveries(ledger, reservation_id))
    rejected = [answer for answer in answers if answer != "handled"]
    if engine.dialect.name == "postgresql":
        assert collisions or rejected, answers
    else:
        assert (collisions, rejected) == ([], [])
    assert counts(engine) == (1, 1)
