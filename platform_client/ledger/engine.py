"""ledger_engine: a SQLAlchemy engine on which the ledger's locks actually lock."""

from __future__ import annotations

import select
import sqlite3
import time
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError

#: How long a statement may wait for a lock before it fails instead of queueing forever.
LOCK_TIMEOUT_MS = 5000
STATEMENT_TIMEOUT_MS = 30000


def ledger_engine(url: str, *, pool_size: int = 10, **kwargs: Any) -> Engine:
    """An engine for the ledger's database.

    PostgreSQL: ``lock_timeout`` and ``statement_timeout`` are set per connection, so a row
    lock is waited for at most 5 s. SQLite: writers are serialised (see
    ``serialise_sqlite_writers``), which is SQLite's stand-in for ``SELECT ... FOR UPDATE``.
    Database errors do not show their bound values (``hide_parameters``): a buyer's e-mail
    address must not reach the logs with an exception.
    """
    parsed = make_url(url)
    kwargs.setdefault("hide_parameters", True)
    if parsed.get_backend_name() == "sqlite":
        connect_args = {"check_same_thread": False, "timeout": LOCK_TIMEOUT_MS / 1000}
        engine = create_engine(parsed, connect_args=connect_args, **kwargs)
        serialise_sqlite_writers(engine)
        return engine
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")  # psycopg 3, a dependency of ours
    options = (
        f"-c lock_timeout={LOCK_TIMEOUT_MS} -c statement_timeout={STATEMENT_TIMEOUT_MS}"
        " -c timezone=UTC"
    )
    kwargs.setdefault("max_overflow", pool_size * 2)
    psycopg3 = parsed.get_driver_name() == "psycopg"
    if not psycopg3:  # psycopg2, pg8000, ...: SQLAlchemy's ping (the check below is psycopg's)
        kwargs.setdefault("pool_pre_ping", True)
    engine = create_engine(
        parsed,
        pool_size=pool_size,
        connect_args={"connect_timeout": 5, "options": options},
        **kwargs,
    )
    if psycopg3 and not kwargs.get("pool_pre_ping"):
        event.listen(engine, "checkout", _refuse_dead_connection)
    return engine


def _refuse_dead_connection(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """Pool checkout: replace a connection the server has closed instead of handing it out.

    SQLAlchemy's pool_pre_ping without its round trip: an idle connection that never LISTENs
    has nothing to read unless the server has said goodbye (``pg_terminate_backend``, a
    restart: an error message and EOF), so a readable socket means a dead connection, and
    DisconnectionError makes the pool discard it and check out another."""
    if dbapi_connection.closed or dbapi_connection.broken:
        raise DisconnectionError("connection closed")
    try:
        poller = select.poll()  # not select.select: it fails on descriptors >= 1024
        poller.register(dbapi_connection.fileno(), select.POLLIN)
        ready = poller.poll(0)
    except (OSError, ValueError) as exc:  # a socket we cannot even poll is no use either
        raise DisconnectionError(f"the connection cannot be checked: {exc}") from exc
    if ready:
        raise DisconnectionError("the server closed the connection (unread data or EOF)")


def _use_wal(dbapi_connection: sqlite3.Connection) -> None:
    """Put the SQLite file in WAL mode, waiting up to LOCK_TIMEOUT_MS for other connections.

    The mode is kept in the file, so this changes something only on a new file. There SQLite
    does not wait on its busy timeout: when several processes open a new file at once (the
    workers of one gunicorn), all but one of their switches fail at once with "database is
    locked". So a busy switch is tried again until one of them has made it.
    """
    deadline = time.monotonic() + LOCK_TIMEOUT_MS / 1000
    pause = 0.001
    while True:
        try:
            dbapi_connection.execute("PRAGMA journal_mode=WAL").close()
            return
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY or time.monotonic() >= deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.05)


def _on_connect(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # SQLAlchemy, not pysqlite, begins transactions
    _use_wal(dbapi_connection)
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={LOCK_TIMEOUT_MS}")
    cursor.close()


def _on_begin(connection: Any) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def serialise_sqlite_writers(engine: Engine) -> None:
    """Make every transaction on a SQLite engine take the write lock when it begins.

    SQLite ignores ``FOR UPDATE``. pysqlite's own deferred BEGIN lets two transactions read the
    same ``taken`` and both write ``taken + 1`` (an oversell); ``BEGIN IMMEDIATE`` serialises
    them from the first statement (the recipe of SQLAlchemy's SQLite documentation). Does
    nothing for other databases or when already installed; connections already pooled are
    discarded so that every connection gets the setting.
    """
    if engine.dialect.name != "sqlite" or event.contains(engine, "begin", _on_begin):
        return
    event.listen(engine, "connect", _on_connect)
    event.listen(engine, "begin", _on_begin)
    engine.dispose()
