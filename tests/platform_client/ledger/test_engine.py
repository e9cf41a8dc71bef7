"""ledger_engine's pool never hands out a connection the server has closed (PostgreSQL only:
SQLite has no server to close one), without pool_pre_ping's round trip per checkout."""

from __future__ import annotations

import pytest
from sqlalchemy import Integer, bindparam, event, select, text
from sqlalchemy.exc import OperationalError

from platform_client.ledger import ledger_engine
from platform_client.ledger.engine import _refuse_dead_connection
from tests.db_faults import terminate_backends
from tests.descriptors import descriptors_above_1024

pytestmark = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


def _cut_every_pooled_connection(engine, url: str) -> set[int]:  # type: ignore[no-untyped-def]
    connections = [engine.connect() for _ in range(3)]
    pids = {c.execute(text("SELECT pg_backend_pid()")).scalar_one() for c in connections}
    for connection in connections:
        connection.close()
    terminate_backends(url, pids)
    return pids


def test_terminated_connections_are_replaced_at_checkout(ledger_database_url):
    engine = ledger_engine(ledger_database_url, pool_size=3)
    try:
        pids = _cut_every_pooled_connection(engine, ledger_database_url)
        for _ in range(3):
            with engine.begin() as connection:
                pid = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
            assert pid not in pids
    finally:
        engine.dispose()


def test_control_without_the_check_a_dead_connection_is_handed_out(ledger_database_url):
    engine = ledger_engine(ledger_database_url, pool_size=3)
    event.remove(engine, "checkout", _refuse_dead_connection)
    try:
        _cut_every_pooled_connection(engine, ledger_database_url)
        with pytest.raises(OperationalError), engine.begin() as connection:
            connection.execute(text("SELECT 1"))
    finally:
        engine.dispose()


def test_pool_pre_ping_when_asked_for_replaces_the_check(ledger_database_url):
    engine = ledger_engine(ledger_database_url, pool_size=3, pool_pre_ping=True)
    try:
        assert not event.contains(engine, "checkout", _refuse_dead_connection)
        pids = _cut_every_pooled_connection(engine, ledger_database_url)
        with engine.begin() as connection:
            assert connection.execute(text("SELECT pg_backend_pid()")).scalar_one() not in pids
    finally:
        engine.dispose()


def test_a_single_statement_commits_by_itself_and_raises_sqlalchemy_errors(ledger_database_url):
    from sqlalchemy.exc import IntegrityError

    from platform_client.ledger.models import Event, Reservation
    from platform_client.ledger.single import SingleStatement

    engine = ledger_engine(ledger_database_url, pool_size=1)
    insert_event = SingleStatement(
        text("INSERT INTO ledger_events (id, name) VALUES (:id, :name) RETURNING id")
    )
    try:
        assert insert_event.first(engine, {"id": "evt_single", "name": "Once"}) == ("evt_single",)
        with engine.connect() as connection:  # committed: another connection sees it
            assert (
                connection.scalar(text("SELECT name FROM ledger_events WHERE id = 'evt_single'"))
                == "Once"
            )
        with pytest.raises(IntegrityError):  # SQLAlchemy's exception, not the driver's
            insert_event.first(engine, {"id": "evt_single", "name": "Twice"})
        with engine.connect() as connection:  # the pooled connection is back in transactions
            assert connection.connection.driver_connection.autocommit is False
        with pytest.raises(ValueError, match="Python-side defaults"):
            # Reservation.updated_at has onupdate=utcnow: SQLAlchemy would compute it per run
            SingleStatement(Reservation.__table__.update().values(email="x")).execute(engine, {})
        with pytest.raises(ValueError, match="bind names the driver escapes"):
            # psycopg's pyformat cannot name "%(a.b)s": SQLAlchemy sends "a_b" and renames
            SingleStatement(select(bindparam("a.b", type_=Integer))).first(engine, {"a.b": 1})
        renamed = SingleStatement(Event.__table__.update().values(name="Renamed"))
        assert renamed.execute(engine, {}) == 1  # the literal travels with the statement
    finally:
        with engine.begin() as connection:
            connection.execute(text("DELETE FROM ledger_events WHERE id = 'evt_single'"))
        engine.dispose()


def test_connections_on_descriptors_above_1024_are_checked_too(ledger_database_url, tmp_path):
    engine = ledger_engine(ledger_database_url, pool_size=1)
    try:
        with descriptors_above_1024(tmp_path):
            with engine.connect() as connection:
                assert connection.connection.driver_connection.fileno() >= 1024
            with engine.connect() as connection:  # through the check again: no ValueError
                assert connection.execute(text("SELECT 1")).scalar_one() == 1
    finally:
        engine.dispose()
