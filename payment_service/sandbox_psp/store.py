"""The sandbox database: engine (SQLite in WAL mode or PostgreSQL) and one transaction per call."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from payment_service.sandbox_psp.models import SandboxBase, Switches

BUSY_TIMEOUT_MS = 5000
T = TypeVar("T")


class Store:
    """Owns the engine; ``transaction()`` commits on success and rolls back on any exception."""

    def __init__(self, url: str) -> None:
        self.engine = _create_engine(url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    def create_all(self) -> None:
        """Create the tables and the switches row; safe when several processes start at once."""
        SandboxBase.metadata.create_all(self.engine)
        try:
            with self.transaction() as db:
                if db.get(Switches, 1) is None:
                    db.add(Switches(id=1, hold_webhooks=False, down=False, next_outcomes="[]"))
        except IntegrityError:
            pass  # another process inserted it first

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        with self.sessions.begin() as db:
            yield db

    def dispose(self) -> None:
        self.engine.dispose()


def retry_once_on_conflict(attempt: Callable[[], T]) -> T:
    """Run ``attempt``; on a unique-index conflict run it once more.

    Two requests with one new idempotency key can both miss the lookup; the unique index stops
    the second, whose retry then finds and replays the first one's object.
    """
    try:
        return attempt()
    except IntegrityError:
        return attempt()


def _create_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url, connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_MS / 1000}
    )

    # SQLAlchemy's SQLite recipe: let SQLAlchemy begin transactions, and take the write lock up
    # front (BEGIN IMMEDIATE) so two processes serialise instead of deadlocking on an upgrade.
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine
