"""Several connections opening a new SQLite file at the same moment all get it in WAL mode.

SQLite does not wait on its busy timeout for `PRAGMA journal_mode=WAL`: when connections of
several processes (gunicorn's workers, `make run`'s services) switch a new file at once, all but
one used to fail with "database is locked", and a gunicorn worker that fails to boot stops the
whole server (seen in bench/reserve.py with the sandbox's file). SQLite only: the race is
SQLite's file locking; PostgreSQL has no journal mode to set.

The race is short, so each engine is raced on many new files; the control shows that the same
harness makes a plain switch fail, so a pass is not a harness that never races.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from payment_service.db import Database
from payment_service.sandbox_psp.store import Store
from platform_client.ledger import ledger_engine
from tests.races import race

FILES = 300  # new files raced per engine; a plain switch fails on about 1 in 20
CONNECTIONS = 4  # connections opening each file at once


def _race_new_files(tmp_path: Path, connect: Callable[[Path], Callable[[], None]]) -> list[str]:
    """For FILES new files: CONNECTIONS connections made ready, then opened together.
    Returns the errors, as text."""
    errors: list[str] = []
    for number in range(FILES):
        openers = [connect(tmp_path / f"new-{number}.db") for _ in range(CONNECTIONS)]
        errors.extend(e for e in race(CONNECTIONS, partial(_error_of, openers)) if e is not None)
    return errors


def _error_of(openers: list[Callable[[], None]], i: int) -> str | None:
    try:
        openers[i]()
    except Exception as exc:  # every failure is a finding: the assertion shows them
        return f"{type(exc).__name__}: {exc}".splitlines()[0]
    return None


def _through(engine_for: Callable[[str], Engine]) -> Callable[[Path], Callable[[], None]]:
    """An opener that checks out a connection of a new engine on the file and reads its mode."""

    def connect(path: Path) -> Callable[[], None]:
        engine = engine_for(f"sqlite:///{path}")

        def open_it() -> None:
            try:
                with engine.connect() as connection:
                    mode = connection.execute(text("PRAGMA journal_mode")).scalar_one()
                assert mode == "wal", mode
            finally:
                engine.dispose()

        return open_it

    return connect


@pytest.mark.parametrize(
    "engine_for",
    [
        pytest.param(lambda url: Database(url).engine, id="payment-service"),
        pytest.param(lambda url: Store(url).engine, id="sandbox"),
        pytest.param(ledger_engine, id="platform-ledger"),
    ],
)
def test_connections_opening_a_new_file_together_all_succeed(tmp_path, engine_for):
    assert _race_new_files(tmp_path, _through(engine_for)) == []


def test_control_a_plain_switch_to_wal_fails_in_the_same_race(tmp_path):
    def connect(path: Path) -> Callable[[], None]:
        connection = sqlite3.connect(path, timeout=5, check_same_thread=False)

        def open_it() -> None:
            try:
                connection.execute("PRAGMA journal_mode=WAL").close()
            finally:
                connection.close()

        return open_it

    errors = _race_new_files(tmp_path, connect)
    assert errors, "the harness never raced: the tests above would pass without the retry"
    assert set(errors) == {"OperationalError: database is locked"}
