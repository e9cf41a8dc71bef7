"""Migrations on a live database: the indexes they build are the ones the models declare, valid;
on PostgreSQL a reader in the way makes an upgrade give up within seconds instead of queueing
every query of the table behind it (concurrent index builds, which queue nothing, wait for it),
and an upgrade that died part-way runs again."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from alembic import command
from alembic.migration import MigrationContext
from sqlalchemy import Connection, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, OperationalError

from payment_service.db import Base, Database
from payment_service.migrate import alembic_config, upgrade
from payment_service.models import import_all_models
from tests.conftest import _create_postgres_database, _drop_postgres_database
from tests.factories import make_merchant
from tests.integration.test_migration_settled_sessions import CLOSED, add_old_checkout, settled_at

POSTGRESQL_ONLY = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


@pytest.fixture
def new_database(database_url: str, tmp_path: Path) -> Iterator[Callable[[], str]]:
    """Makes new, empty databases of ``database_url``'s backend, dropped after the test."""
    names: list[str] = []

    def make() -> str:
        if make_url(database_url).get_backend_name() == "sqlite":
            names.append(f"db{len(names)}")
            return f"sqlite:///{tmp_path / names[-1]}.db"
        name, url = _create_postgres_database()
        names.append(name)
        return url

    yield make
    if make_url(database_url).get_backend_name() == "postgresql":
        for name in names:
            _drop_postgres_database(name)


def index_definitions(url: str) -> dict[str, str]:
    """Every index's full definition (partial-index predicates included, which Alembic's
    compare_metadata does not look at), by name."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            if connection.dialect.name == "sqlite":
                query = (
                    "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
                )
            else:
                query = (
                    "SELECT indexname, indexdef FROM pg_indexes"
                    " WHERE schemaname = 'public' AND tablename != 'alembic_version'"
                )
            return {name: sql for name, sql in connection.execute(text(query))}
    finally:
        engine.dispose()


def invalid_indexes(url: str) -> list[str]:
    """Indexes a concurrent build or drop left INVALID: kept up to date but never used."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            query = "SELECT indexrelid::regclass::text FROM pg_index WHERE NOT indisvalid"
            return list(connection.scalars(text(query)))
    finally:
        engine.dispose()


def assert_schema_is_the_models(url: str, new_database: Callable[[], str]) -> None:
    import_all_models()
    declared = new_database()
    engine = create_engine(declared)
    try:
        Base.metadata.create_all(engine)
    finally:
        engine.dispose()
    assert index_definitions(url) == index_definitions(declared)
    if make_url(url).get_backend_name() == "postgresql":
        assert invalid_indexes(url) == []


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def execute_autocommit(url: str, statement: str) -> None:
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(text(statement))
    finally:
        engine.dispose()


def leave_invalid_index(url: str, name: str) -> None:
    """An INVALID index of this name, as a concurrent build that failed leaves behind: every
    checkout of add_old_checkout has the same event_id, so a unique one cannot be built."""
    with pytest.raises(IntegrityError):
        execute_autocommit(url, f"CREATE UNIQUE INDEX CONCURRENTLY {name} ON checkouts (event_id)")
    assert invalid_indexes(url) == [name]


def test_the_migrated_indexes_are_those_the_models_declare(
    database_url: str, new_database: Callable[[], str]
) -> None:
    assert_schema_is_the_models(database_url, new_database)


@POSTGRESQL_ONLY
def test_an_upgrade_that_died_building_0006s_index_runs_again(
    new_database: Callable[[], str],
) -> None:
    url = new_database()
    upgrade(url, "0005")
    old = Database(url)
    merchant_id = make_merchant(old).merchant_id
    add_old_checkout(old, merchant_id, "paid", "paid", session=True, closed_at=CLOSED)
    add_old_checkout(old, merchant_id, "open", "open", session=True, closed_at=None)
    old.dispose()
    leave_invalid_index(url, "uq_checkouts_live_reservation_0006")

    upgrade(url)

    assert_schema_is_the_models(url, new_database)


@POSTGRESQL_ONLY
def test_an_upgrade_that_died_between_0006s_drop_and_rename_runs_again(
    new_database: Callable[[], str],
) -> None:
    url = new_database()
    upgrade(url, "0005")
    # The new index built under its temporary name, the old one dropped: only a rename is left.
    execute_autocommit(
        url,
        "CREATE UNIQUE INDEX uq_checkouts_live_reservation_0006"
        " ON checkouts (merchant_id, reservation_id)"
        " WHERE status = 'open' OR (status = 'paid' AND NOT late)",
    )
    execute_autocommit(url, "DROP INDEX uq_checkouts_live_reservation")

    upgrade(url)

    assert_schema_is_the_models(url, new_database)


@POSTGRESQL_ONLY
def test_an_upgrade_that_died_in_0007_after_adding_the_column_runs_again(
    new_database: Callable[[], str],
) -> None:
    url = new_database()
    upgrade(url, "0006")
    old = Database(url)
    merchant_id = make_merchant(old).merchant_id
    add_old_checkout(old, merchant_id, "done", "canceled", session=True, closed_at=CLOSED)
    add_old_checkout(old, merchant_id, "todo", "canceled", session=True, closed_at=CLOSED)
    old.dispose()
    # Where the first run died: column added, one batch settled, the index build failed.
    execute_autocommit(
        url, "ALTER TABLE checkouts ADD COLUMN provider_session_settled_at TIMESTAMP WITH TIME ZONE"
    )
    execute_autocommit(
        url,
        "UPDATE checkouts SET provider_session_settled_at = '2026-01-02T03:04:05Z'"
        " WHERE id = 'chk_done'",
    )
    leave_invalid_index(url, "ix_checkouts_unsettled_session_updated_at")

    upgrade(url)

    assert_schema_is_the_models(url, new_database)
    db = Database(url)
    try:
        settled = settled_at(db)
    finally:
        db.dispose()
    assert settled == {"chk_todo": CLOSED, "chk_done": settled["chk_done"]}
    assert settled["chk_done"] is not None and settled["chk_done"].year == 2026  # kept


@POSTGRESQL_ONLY
def test_a_reader_in_the_way_makes_the_upgrade_give_up_within_seconds(
    new_database: Callable[[], str],
) -> None:
    url = new_database()
    upgrade(url, "0006")
    reader = create_engine(url).connect()
    # Ends the reader if the upgrade waits for it (as it did, queueing every query behind).
    reader.execute(text("SET idle_in_transaction_session_timeout = '10s'"))
    reader.execute(text("SELECT count(*) FROM checkouts"))  # ACCESS SHARE until it commits
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            started = time.monotonic()
            with pytest.raises(OperationalError, match="lock timeout"):
                command.upgrade(alembic_config(url, connection), "head")
            assert time.monotonic() - started < 5
            # The caller's connection is handed back with its own lock timeout.
            assert connection.scalar(text("SHOW lock_timeout")) == "0"
            assert current_revision(connection) == "0006"
            connection.rollback()

        reader.commit()
        upgrade(url)

        with engine.connect() as connection:
            assert current_revision(connection) == "0007"
    finally:
        reader.close()
        reader.engine.dispose()
        engine.dispose()
    assert_schema_is_the_models(url, new_database)


@POSTGRESQL_ONLY
def test_a_concurrent_index_build_waits_for_an_older_reader_instead_of_giving_up(
    new_database: Callable[[], str],
) -> None:
    url = new_database()
    upgrade(url, "0005")
    plain = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(plain) as dump:  # as pg_dump reads: one snapshot for the whole run
        dump.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        dump.execute("SELECT count(*) FROM checkouts")
        finish = threading.Timer(4, dump.commit)  # longer than the lock timeout
        finish.start()
        try:
            started = time.monotonic()
            upgrade(url, "0006")
            assert time.monotonic() - started >= 3
        finally:
            finish.join()
    upgrade(url)
    assert_schema_is_the_models(url, new_database)
