"""The cheap paths of start_registration: sold out, closed and already registered are answered
from one plain read without the tier's lock, and a paid start makes few statements (on
PostgreSQL one, with the checkoutUrl's UPDATE: hold_seat_at_once); the buyer who holds a seat
of a full tier still gets their hold back (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, event, update
from sqlalchemy.orm import Session

from platform_client.ledger import (
    AlreadyRegistered,
    Ledger,
    Reservation,
    SaleClosed,
    SoldOut,
)
from platform_client.ledger.single import SingleStatement
from tests.platform_client.ledger.conftest import Clock
from tests.platform_client.ledger.helpers import EVENT, FREE, FULL, add_tier, taken

DML = ("WITH", "SELECT", "INSERT", "UPDATE", "DELETE")


def at_once_first(engine: Engine) -> list[str]:
    """PostgreSQL tries the one-statement hold first; when it changes nothing (sold out,
    closed, registered...) the general path answers."""
    return ["WITH"] if engine.dialect.name == "postgresql" else []


def verbs(seen: list[str]) -> list[str]:
    return [sql.split()[0].upper() for sql in seen]


@contextmanager
def statements(engine: Engine) -> Iterator[list[str]]:
    """The SQL statements the engine sends meanwhile (not BEGIN/COMMIT): through SQLAlchemy's
    Connection, and straight on a DBAPI cursor through a SingleStatement."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, sql: str, *_args: Any) -> None:
        if sql.lstrip().upper().startswith(DML):
            seen.append(sql)

    run = SingleStatement._run

    def run_recorded(self: SingleStatement, on: Engine, *args: Any, **kwargs: Any) -> Any:
        record(None, None, self._compile(on.dialect)[0])
        return run(self, on, *args, **kwargs)

    event.listen(engine, "before_cursor_execute", record)
    SingleStatement._run = run_recorded  # type: ignore[method-assign]
    try:
        yield seen
    finally:
        SingleStatement._run = run  # type: ignore[method-assign]
        event.remove(engine, "before_cursor_execute", record)


def test_a_full_tier_answers_sold_out_from_one_plain_read(ledger: Ledger, engine: Engine):
    ledger.start_registration("u_1", EVENT, FULL, {})
    ledger.start_registration("u_2", EVENT, FULL, {})
    with statements(engine) as seen, pytest.raises(SoldOut):
        ledger.start_registration("u_3", EVENT, FULL, {})
    assert verbs(seen) == [*at_once_first(engine), "SELECT"], seen
    assert not any("FOR UPDATE" in sql for sql in seen), seen
    assert taken(engine, FULL) == 2


def test_closed_and_already_registered_are_answered_without_the_lock(
    ledger: Ledger, engine: Engine, clock: Clock
):
    add_tier(ledger, "tier_early", 5, valid_until=clock() - timedelta(seconds=1))
    ledger.start_registration("u_1", EVENT, FREE, {})
    with statements(engine) as seen:
        with pytest.raises(SaleClosed):
            ledger.start_registration("u_2", EVENT, "tier_early", {})
        with pytest.raises(AlreadyRegistered):
            ledger.start_registration("u_1", EVENT, FULL, {})
    assert verbs(seen) == [*at_once_first(engine), "SELECT"] * 2, seen
    assert not any("FOR UPDATE" in sql for sql in seen), seen


def test_a_registered_buyer_of_a_full_tier_is_told_so_not_sold_out(ledger: Ledger):
    for user in ("u_1", "u_2", "u_3"):  # FREE has 3 seats
        ledger.start_registration(user, EVENT, FREE, {})
    with pytest.raises(AlreadyRegistered):
        ledger.start_registration("u_3", EVENT, FREE, {})
    with pytest.raises(SoldOut):
        ledger.start_registration("u_4", EVENT, FREE, {})


def test_the_holder_of_the_last_seat_gets_their_hold_back_from_a_full_tier(
    ledger: Ledger, engine: Engine
):
    ledger.start_registration("u_1", EVENT, FULL, {})
    last = ledger.start_registration("u_2", EVENT, FULL, {})
    assert ledger.start_registration("u_2", EVENT, FULL, {}) == last  # a double submit
    assert taken(engine, FULL) == 2


def test_an_expired_hold_of_a_full_tier_gives_way_to_a_new_one(ledger: Ledger, engine: Engine):
    first = ledger.start_registration("u_1", EVENT, FULL, {})
    ledger.start_registration("u_2", EVENT, FULL, {})
    # Both deadlines passed, not yet swept (moved rather than the clock: the service checks a
    # new checkout's expiresAt against its own real clock).
    with Session(engine) as session, session.begin():
        session.execute(
            update(Reservation).values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    again = ledger.start_registration("u_1", EVENT, FULL, {})
    assert again.reservation_id != first.reservation_id and again.checkout_url
    assert taken(engine, FULL) == 2
    with pytest.raises(SoldOut):  # u_2's expired hold still counts until it is swept
        ledger.start_registration("u_3", EVENT, FULL, {})


def test_a_paid_start_makes_few_statements(ledger: Ledger, engine: Engine):
    """PostgreSQL: the one-statement hold and the checkoutUrl's UPDATE, each its own
    transaction. SQLite: the plain read, the tier's read under the write lock, its UPDATE,
    the hold's INSERT, the checkoutUrl."""
    with statements(engine) as seen:
        started = ledger.start_registration("u_1", EVENT, FULL, {})
    assert started.checkout_url
    if engine.dialect.name == "postgresql":
        assert verbs(seen) == ["WITH", "UPDATE"], seen
    else:
        assert verbs(seen) == ["SELECT", "SELECT", "UPDATE", "INSERT", "UPDATE"], seen
    assert taken(engine, FULL) == 1


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_deadlocked_one_statement_hold_falls_back_to_the_general_path(
    ledger: Ledger, engine: Engine, monkeypatch: pytest.MonkeyPatch
):
    """PostgreSQL undoes a deadlocked statement; the start then takes the locks in order."""
    from sqlalchemy import text

    from platform_client.ledger import holds

    with engine.begin() as connection:
        connection.execute(text(
            "CREATE OR REPLACE FUNCTION test_deadlock() RETURNS int AS $$ BEGIN "
            "RAISE EXCEPTION 'deadlock detected' USING ERRCODE = '40P01'; END $$ LANGUAGE plpgsql"
        ))  # fmt: skip
    monkeypatch.setattr(holds, "_HOLD_AT_ONCE", SingleStatement(text("SELECT test_deadlock()")))
    try:
        started = ledger.start_registration("u_1", EVENT, FULL, {})
        assert started.checkout_url and taken(engine, FULL) == 1
    finally:
        with engine.begin() as connection:
            connection.execute(text("DROP FUNCTION test_deadlock()"))
