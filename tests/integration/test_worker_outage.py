"""The worker while its database is missing: every job fails every round, and the log must not
fill a disk (a traceback per job per second was about 28 KB/s, 2.4 GB a day per worker).

The first failure of a job in a row is logged with its traceback, the next ones as one line
each, and the job waits twice as long after each (at most MAX_FAILURE_BACKOFF); once the
database is there, the job says it recovered and runs at its own interval again. The database
is real: first one that does not exist yet, then created and migrated.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy.engine import make_url

from payment_service.db import Database
from payment_service.migrate import upgrade
from payment_service.providers.registry import ProviderRegistry
from payment_service.settings import normalize_database_url
from payment_service.worker import MAX_FAILURE_BACKOFF, Job, Worker
from tests.conftest import PG_ADMIN_URL


@pytest.fixture(params=["sqlite", "postgresql"])
def missing_database(request, tmp_path) -> Iterator[tuple[str, object]]:  # type: ignore[no-untyped-def]
    """(the URL of a database that does not exist yet, a function that creates it)."""
    if request.param == "sqlite":
        path = tmp_path / "not-yet" / "payments.db"  # the directory is missing too
        url = f"sqlite:///{path}"
        yield url, lambda: upgrade(normalize_database_url(url))
        return
    name = f"payment_test_outage_{secrets.token_hex(4)}"
    url = make_url(PG_ADMIN_URL).set(database=name, drivername="postgresql+psycopg")
    rendered = url.render_as_string(hide_password=False)

    def create() -> None:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        upgrade(rendered)

    yield rendered, create
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _lines(log_stream, job: str, event: str) -> list[dict]:  # type: ignore[no-untyped-def]
    lines = [json.loads(line) for line in log_stream.getvalue().splitlines() if line.strip()]
    return [line for line in lines if line.get("event") == event and line.get("job") == job]


def test_a_missing_database_is_logged_once_in_full_then_briefly_at_a_slowing_pace(
    missing_database, log_stream
):
    url, create = missing_database
    database = Database(url)
    worker = Worker(database, ProviderRegistry(), sweep_every=1.0)
    sweep = next(job for job in worker.jobs if job.name == "expiry_sweep")
    try:
        pauses = []
        for _ in range(7):
            for job in worker.jobs:
                job.next_at = 0.0  # due now: the test does not wait out the pauses
            worker.run_once()
            pauses.append(round(sweep.next_at - time.monotonic()))

        failed = _lines(log_stream, "expiry_sweep", "worker.job_failed")
        assert len(failed) == 7
        assert "exception" in failed[0]  # the first one with its traceback
        assert all("exception" not in line for line in failed[1:])
        assert [line["failures"] for line in failed[1:]] == [2, 3, 4, 5, 6, 7]
        assert all(line["error"].startswith("OperationalError: ") for line in failed[1:])
        assert pauses == [1, 2, 4, 8, 16, MAX_FAILURE_BACKOFF, MAX_FAILURE_BACKOFF]

        create()
        sweep.next_at = 0.0
        worker.run_once()
        recovered = _lines(log_stream, "expiry_sweep", "worker.job_recovered")
        assert [(line["job"], line["failures"]) for line in recovered] == [("expiry_sweep", 7)]
        assert sweep.failures == 0
        assert round(sweep.next_at - time.monotonic()) == 1  # its own interval again
    finally:
        worker.close()
        database.dispose()


def test_a_long_outage_keeps_the_pause_at_its_cap():
    """A day of failures every 30 s is about 2,900 in a row: the pause must stay a number."""
    job = Job("expiry_sweep", 1.0, lambda: 0)
    expected = {1: 1.0, 5: 16.0, 6: MAX_FAILURE_BACKOFF, 1024: MAX_FAILURE_BACKOFF,
                1025: MAX_FAILURE_BACKOFF, 100_000: MAX_FAILURE_BACKOFF}  # fmt: skip
    for failures, pause in expected.items():
        job.failures = failures
        assert job.pause_after_failure() == pause
