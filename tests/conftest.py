"""Test fixtures: every database test runs on SQLite and on PostgreSQL, each in its own database.

PostgreSQL is used when TEST_DATABASE_URL is set or 127.0.0.1:5432 answers. Under CI=true it is
mandatory: unreachable ends the run with an error, never a silent skip.
"""

from __future__ import annotations

import io
import logging
import os
import secrets
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, event, text
from sqlalchemy.engine import make_url

from payment_service import close_app, create_app
from payment_service.db import Base, Database
from payment_service.logging import configure_logging
from payment_service.migrate import upgrade
from payment_service.models import import_all_models
from payment_service.settings import Settings, normalize_database_url
from tests.db_faults import terminate_backends
from tests.factories import MerchantCredentials, make_merchant, public_resolver

DEFAULT_PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_ADMIN_URL = os.environ.get("TEST_DATABASE_URL") or DEFAULT_PG_ADMIN_URL
IN_CI = os.environ.get("CI", "").lower() == "true"


def _postgres_reachable() -> str | None:
    """None when reachable, else the reason."""
    try:
        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3) as connection:
            connection.execute("SELECT 1")
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return None


_PG_PROBLEM = _postgres_reachable()
BACKENDS = ["sqlite"] if _PG_PROBLEM else ["sqlite", "postgresql"]


def pytest_sessionstart(session: pytest.Session) -> None:
    if IN_CI and _PG_PROBLEM:
        pytest.exit(
            f"CI=true needs PostgreSQL at {make_url(PG_ADMIN_URL).render_as_string()} "
            f"but it is unreachable: {_PG_PROBLEM}",
            returncode=3,
        )


def pytest_report_header(config: pytest.Config) -> str:
    if _PG_PROBLEM:
        return f"database backends: sqlite only (PostgreSQL unreachable: {_PG_PROBLEM})"
    return "database backends: sqlite, postgresql"


def _create_postgres_database() -> tuple[str, str]:
    name = f"payment_test_{os.getpid()}_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    url = make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    return name, normalize_database_url(url)


def _drop_postgres_database(name: str) -> None:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session", params=BACKENDS)
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A new database per backend for the whole run, built by the migrations (never create_all)."""
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("sqlite") / "payment-test.db"
        url = normalize_database_url(f"sqlite:///{path}")
        upgrade(url)
        yield url
        return
    name, url = _create_postgres_database()
    try:
        upgrade(url)
        yield url
    finally:
        _drop_postgres_database(name)


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    """The database, emptied after each test (tests use real commits, threads and processes,
    so a per-test savepoint cannot isolate them)."""
    import_all_models()
    database = Database(database_url, pool_size=10)
    try:
        yield database
    finally:
        database.dispose()
        cleaner = Database(database_url)
        with cleaner.transaction() as session:
            for table in reversed(Base.metadata.sorted_tables):
                session.execute(text(f'DELETE FROM "{table.name}"'))
        cleaner.dispose()


@pytest.fixture(scope="session")
def sandbox_database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One sandbox PSP database for the run: it is a stand-in provider, not our data."""
    return f"sqlite:///{tmp_path_factory.mktemp('sandbox')}/sandbox-psp.db"


@pytest.fixture
def settings(database_url: str, sandbox_database_url: str) -> Settings:
    return replace(
        Settings(),
        database_url=database_url,
        sandbox_database_url=sandbox_database_url,
        public_url="http://pay.test",
        secret_key="test-secret-key-" + "x" * 32,
        allow_private_callbacks=False,
        callback_retry_schedule=(0, 1, 2),
    )


@pytest.fixture
def app(settings: Settings, db: Database):  # type: ignore[no-untyped-def]
    application = create_app(settings)
    application.config["TESTING"] = True
    # No test depends on real DNS: every callback host resolves through a stand-in.
    policy = application.extensions["payment_policy"]
    application.extensions["payment_policy"] = replace(policy, resolve=public_resolver)
    yield application
    close_app(application)


@pytest.fixture
def merchant(db: Database) -> MerchantCredentials:
    return make_merchant(db)


@pytest.fixture
def client(app):  # type: ignore[no-untyped-def]
    return app.test_client()


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


@pytest.fixture
def cut_next_checkout() -> Iterator[Callable[..., None]]:
    """Arm an engine so a connection it checks out (the next, or the one after `skip` others)
    dies after the pool's checkout check has passed it: what happens when pg_terminate_backend
    (or a restart) lands between the check and the statement. The backend is gone before the
    statement is sent. PostgreSQL only."""
    countdown: list[int] = []

    def cut(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        if not countdown:
            return
        if countdown[0] > 0:
            countdown[0] -= 1
            return
        countdown.clear()
        terminate_backends(PG_ADMIN_URL, [dbapi_connection.info.backend_pid])

    engines: list[Engine] = []

    def arm(engine: Engine, *, skip: int = 0) -> None:
        if engine not in engines:
            engines.append(engine)
            event.listen(engine, "checkout", cut)  # after refuse_dead_connection: it passed
        countdown[:] = [skip]

    try:
        yield arm
        assert not countdown, "the armed checkout never happened"
    finally:
        for engine in engines:
            event.remove(engine, "checkout", cut)


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    """Log lines as JSON into a string, for tests that read what was logged."""
    stream = io.StringIO()
    configure_logging("json", "DEBUG", stream=stream)
    yield stream
    logging.getLogger().handlers[:] = []
