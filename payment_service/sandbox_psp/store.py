"""The sandbox database: engine (SQLite in WAL mode or PostgreSQL) and one transaction per call."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from payment_service.db import LOCK_TIMEOUT_MS, make_sqlite_transactional
from payment_service.sandbox_psp.models import SandboxBase, Switches

T = TypeVar("T")
# The advisory lock key of create_all on PostgreSQL: any constant no other code of ours uses.
_CREATE_ALL_LOCK = 0x53414E44424F58  # "SANDBOX"


class Store:
    """Owns the engine; ``transaction()`` commits on success and rolls back on any exception."""

    def __init__(self, url: str) -> None:
        self.engine = _create_engine(url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    def create_all(self) -> None:
        """Create the tables and the switches row; safe when several processes start at once.

        Every worker of every API server runs this at boot. On PostgreSQL two CREATE TABLEs of
        one name at once fail (a duplicate in pg_type), so a transaction-scoped advisory lock
        lets one process create while the others wait and then find the tables there. On
        SQLite the transaction's BEGIN IMMEDIATE does the same."""
        with self.engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _CREATE_ALL_LOCK}
                )
            SandboxBase.metadata.create_all(connection)
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
    # hide_parameters: a database error's text never carries bound values (the return URLs'
    # checkout-page tokens, order names) into the logs.
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True, hide_parameters=True)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": LOCK_TIMEOUT_MS / 1000},
        hide_parameters=True,
    )
    # SQLAlchemy's SQLite recipe, as for the service's own database: SQLAlchemy begins
    # transactions and takes the write lock up front (BEGIN IMMEDIATE), so two processes
    # serialise instead of deadlocking on an upgrade; WAL mode, set safely on a new file.
    make_sqlite_transactional(engine)
    return engine
