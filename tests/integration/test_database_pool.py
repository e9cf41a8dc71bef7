"""The pool never hands out a connection the server has closed (PostgreSQL: SQLite has no
server to close one), without a round trip per checkout."""

from __future__ import annotations

import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import OperationalError

from payment_service.db import Database, refuse_dead_connection
from payment_service.rawsql import Statement, transaction
from tests.db_faults import terminate_backends
from tests.descriptors import descriptors_above_1024

pytestmark = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)

_BACKEND_PID = Statement(text("SELECT pg_backend_pid()"))


def _backend_pids(db: Database) -> set[int]:
    """Check out every pooled connection at once: the server-side pid of each."""
    connections = [db.engine.connect() for _ in range(3)]
    try:
        return {c.execute(text("SELECT pg_backend_pid()")).scalar_one() for c in connections}
    finally:
        for connection in connections:
            connection.close()


def test_connections_the_server_terminated_are_replaced_at_checkout(database_url):
    db = Database(database_url, pool_size=3)
    try:
        pids = _backend_pids(db)
        terminate_backends(database_url, pids)

        for _ in range(3):  # every pooled connection was cut; each checkout gets a live one
            with transaction(db) as tx:
                row = tx.first(_BACKEND_PID)
            assert row is not None and row[0] not in pids
        assert db.engine.pool.checkedout() == 0
    finally:
        db.dispose()


def test_control_without_the_check_the_pool_hands_out_a_dead_connection(database_url):
    """The harness does cut pooled connections: without the checkout check (and no pre-ping)
    the first transaction after pg_terminate_backend fails."""
    db = Database(database_url, pool_size=3)
    event.remove(db.engine, "checkout", refuse_dead_connection)
    try:
        terminate_backends(database_url, _backend_pids(db))
        with pytest.raises(OperationalError), transaction(db) as tx:
            tx.first(_BACKEND_PID)
    finally:
        db.dispose()


def test_a_live_idle_connection_is_reused_not_replaced(database_url):
    db = Database(database_url, pool_size=1)
    try:
        with transaction(db) as tx:
            first = tx.first(_BACKEND_PID)
        with transaction(db) as tx:
            second = tx.first(_BACKEND_PID)
        assert first == second
    finally:
        db.dispose()


def test_connections_on_descriptors_above_1024_are_checked_too(database_url, tmp_path):
    """select.select refuses descriptors >= 1024; a busy process has sockets up there."""
    db = Database(database_url, pool_size=1)
    try:
        with descriptors_above_1024(tmp_path):
            with transaction(db) as tx:
                first = tx.first(_BACKEND_PID)
                assert tx._dbapi_connection.fileno() >= 1024
            with transaction(db) as tx:  # checked out again through the check: reused
                assert tx.first(_BACKEND_PID) == first
            terminate_backends(database_url, {first[0]})
            with transaction(db) as tx:  # and a dead one up there is still replaced
                assert tx.first(_BACKEND_PID) != first
    finally:
        db.dispose()
