"""Database: engine, declarative Base, column types, one transaction per unit of work."""

from __future__ import annotations

import select
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, Engine, MetaData, create_engine, event, text
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# How long a statement may wait for a row lock before it fails instead of queueing forever.
LOCK_TIMEOUT_MS = 5000
STATEMENT_TIMEOUT_MS = 30000


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend (SQLite stores no zone of its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; use datetime.now(UTC)")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Database:
    """Owns the engine and hands out sessions; services open one transaction per use case."""

    def __init__(self, url: str, *, pool_size: int = 5) -> None:
        self.url = url
        self.engine = _create_engine(url, pool_size=pool_size)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def is_postgresql(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """Begin, yield a session, commit on success and roll back on any exception."""
        with self.sessions.begin() as session:
            yield session

    def ping(self) -> None:
        with self.engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()


def _create_engine(url: str, *, pool_size: int) -> Engine:
    # hide_parameters: a database error's text never carries bound values (buyers' e-mail
    # addresses, provider references) into the logs.
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": LOCK_TIMEOUT_MS / 1000},
            hide_parameters=True,
        )
        make_sqlite_transactional(engine)
        return engine
    # The checkout check below reads psycopg 3's connection state; any other driver (Settings
    # always picks psycopg 3, a caller of Database may not) gets SQLAlchemy's ping instead.
    psycopg3 = make_url(url).get_driver_name() == "psycopg"
    engine = create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size * 2,
        pool_pre_ping=not psycopg3,
        hide_parameters=True,
        connect_args={
            "connect_timeout": 5,
            "options": f"-c lock_timeout={LOCK_TIMEOUT_MS} "
            f"-c statement_timeout={STATEMENT_TIMEOUT_MS} -c timezone=UTC",
        },
    )
    if psycopg3:
        event.listen(engine, "checkout", refuse_dead_connection)
    return engine


def refuse_dead_connection(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """Pool checkout: a connection the server has closed is replaced, not handed out.

    What SQLAlchemy's pool_pre_ping does, without its round trip (a `SELECT 1` per checkout
    was a fifth of a checkout creation's CPU). An idle connection of ours has nothing to read:
    we never LISTEN, and the server speaks first only to say goodbye (`pg_terminate_backend`,
    a shutdown: an error message and EOF). So a readable socket, or one psycopg already knows is
    broken, means a dead connection; raising DisconnectionError makes the pool discard it and
    check out another (see SQLAlchemy's "Disconnect Handling - Pessimistic"). A connection that
    dies after this check fails its statement as it would after a pre-ping."""
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


def use_wal(dbapi_connection: sqlite3.Connection, timeout_ms: int = LOCK_TIMEOUT_MS) -> None:
    """Put the SQLite file in WAL mode, waiting up to ``timeout_ms`` for other connections.

    The mode is kept in the file, so this changes something only on a new file. There SQLite
    does not wait on its busy timeout: when several processes open a new file at once (the
    workers of one gunicorn, the services of `make run`), all but one of their switches fail
    at once with "database is locked", and a gunicorn worker that fails to boot stops the
    whole server. So a busy switch is tried again until one of them has made it.
    """
    deadline = time.monotonic() + timeout_ms / 1000
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


def make_sqlite_transactional(engine: Engine) -> None:
    """Let SQLAlchemy, not pysqlite, begin transactions, and take the write lock up front.

    pysqlite's own BEGIN is deferred, so two writers can both read and then deadlock on the
    upgrade to a write lock; BEGIN IMMEDIATE serialises writers at the start instead. This is
    the recipe of SQLAlchemy's SQLite dialect documentation. Connections also get WAL mode
    (readers do not block the writer), foreign keys and a busy timeout.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        use_wal(dbapi_connection)
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={LOCK_TIMEOUT_MS}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")
