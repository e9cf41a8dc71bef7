"""Every worker of every API server creates the sandbox's tables at boot, at the same moment.

Before Store.create_all serialised them, two CREATE TABLEs of one name on PostgreSQL failed
(UniqueViolation on pg_type, or DuplicateTable): the worker failed to boot and gunicorn
stopped the server, on every first start of compose's two API replicas. The control runs
SQLAlchemy's plain create_all in the same harness and shows that it does race there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import psycopg
import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

from payment_service.sandbox_psp.models import SandboxBase, Switches
from payment_service.sandbox_psp.store import Store
from tests.races import race

TRIALS = 10  # new, empty databases (PostgreSQL: schemas) per test
PROCESSES = 6  # booting workers per database: one Store each


@pytest.fixture
def empty_databases(database_url: str, tmp_path) -> Iterator[Callable[[int], str]]:  # type: ignore[no-untyped-def]
    """Yields a function: trial number -> the URL of a new, empty database. On PostgreSQL a new
    schema of the test database, chosen through the connection's search_path."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        yield lambda number: f"sqlite:///{tmp_path / f'sandbox-{number}.db'}"
        return
    plain = url.set(drivername="postgresql").render_as_string(hide_password=False)

    def new_schema(number: int) -> str:
        with psycopg.connect(plain, autocommit=True) as connection:
            connection.execute(f"CREATE SCHEMA boot_{number}")
        options = {"options": f"-csearch_path=boot_{number}"}
        return url.update_query_dict(options).render_as_string(hide_password=False)

    yield new_schema
    with psycopg.connect(plain, autocommit=True) as connection:
        for number in range(TRIALS):
            connection.execute(f"DROP SCHEMA IF EXISTS boot_{number} CASCADE")


def _boot_together(
    empty_databases: Callable[[int], str], boot: Callable[[str], Callable[[], None]]
) -> list[str]:
    """TRIALS times: PROCESSES boots made ready on one new database, then run at once.
    Returns the failures, as exception names."""
    failures: list[str] = []
    for number in range(TRIALS):
        url = empty_databases(number)
        boots = [boot(url) for _ in range(PROCESSES)]

        def run(i: int, boots: list[Callable[[], None]] = boots) -> str | None:
            try:
                boots[i]()
            except Exception as exc:  # every failure is a finding: the assertion names them
                return type(exc).__name__
            return None

        failures.extend(f for f in race(PROCESSES, run) if f is not None)
    return failures


def test_stores_booting_together_all_create_the_tables(empty_databases):
    stores: list[Store] = []

    def boot(url: str) -> Callable[[], None]:
        stores.append(store := Store(url))
        return store.create_all

    try:
        assert _boot_together(empty_databases, boot) == []
        with stores[-1].transaction() as db:
            assert db.get(Switches, 1) is not None
    finally:
        for store in stores:
            store.dispose()


def test_control_plain_create_all_races_in_the_same_harness(empty_databases):
    engines = []

    def boot(url: str) -> Callable[[], None]:
        engine = create_engine(url)
        engines.append(engine)
        return lambda: SandboxBase.metadata.create_all(engine)

    try:
        failures = _boot_together(empty_databases, boot)
    finally:
        for engine in engines:
            engine.dispose()
    assert failures, "the harness never raced: the test above would pass without the lock"
