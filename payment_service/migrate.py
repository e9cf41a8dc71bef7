"""Schema migrations through Alembic, for the CLI and the tests alike, and the lock rules
they run under on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, text

# How long a migration's statement waits for a lock before it fails. While an ACCESS EXCLUSIVE
# request waits, every read and write of the table queues behind it: failing fast (and running
# the upgrade again) is cheaper than stalling traffic behind a long reader such as pg_dump.
LOCK_TIMEOUT = "2s"


def alembic_config(database_url: str, connection: Connection | None = None) -> Config:
    """A connection given here must not be in a transaction: each migration commits its own,
    and some statements (concurrent index builds) run outside any."""
    config = Config()
    config.set_main_option("script_location", "payment_service:migrations")
    # ConfigParser treats % as interpolation; URLs may carry %-escapes in passwords.
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def set_lock_timeout(connection: Connection, timeout: str) -> str:
    """Set PostgreSQL's lock_timeout for the session and return the value it replaces.

    For the session, not SET LOCAL: it must outlast the transactions a migration commits and
    its autocommit blocks. In a transaction it lasts only if that transaction commits."""
    previous = connection.scalar(text("SELECT current_setting('lock_timeout')"))
    connection.execute(
        text("SELECT set_config('lock_timeout', :timeout, false)"), {"timeout": timeout}
    )
    return str(previous)


@contextmanager
def waiting_for_locks(connection: Connection) -> Iterator[None]:
    """No lock timeout for concurrent index builds and drops, inside an autocommit block.

    They wait for every older transaction on the table to end (a pg_dump's too), but hold only
    SHARE UPDATE EXCLUSIVE meanwhile, which no read or write waits behind: waiting is harmless
    where failing would throw the build away."""
    previous = set_lock_timeout(connection, "0")
    try:
        yield
    finally:
        set_lock_timeout(connection, previous)
