"""The reference event platform as a real process beside the payment service's Stack.

    with platform_database(database_url, tmp_path) as platform_db:
        platform = PlatformStack.start(database_url, platform_db, tmp_path)
        buyer = PlatformBuyer(platform)          # tests/e2e/platform_buyer.py
        checkout_url = buyer.start_registration(KRW_TIER)
        ...
        platform.stop()

`python -m platform_client.demo serve` listens on the Stack's platform origin (the merchant's
allowlisted callback and redirect origin), with its own database: a second PostgreSQL database
or SQLite file, as a platform would have. Only HTTP passes between the processes; the test reads
or moves the platform's database only for what a person cannot do through pages (a hold whose
time has run out, a tier with one place).
"""

from __future__ import annotations

import os
import secrets
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
from sqlalchemy import Engine, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from payment_service.db import Base, Database
from payment_service.models import import_all_models
from platform_client.ledger import Reservation, Tier, ledger_engine
from tests.e2e.processes import Server
from tests.e2e.stack import Stack, StackError

SEED_EVENT = "evt_seoul_marathon_2027"
FREE_TIER, KRW_TIER, USD_TIER = "tier_10k_free", "tier_full_krw", "tier_full_usd"
# Long enough to outlast a platform restart (about 25 s in all), short enough for a test.
RETRY_SCHEDULE = "0,1,1,2,2,2,3,3,5,5"
SWEEP_EVERY = "0.5"


@contextmanager
def platform_database(database_url: str, tmp_path: Path) -> Iterator[str]:
    """The platform's own database on the same backend as the payment service's."""
    if database_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'platform.db'}"
        return
    parsed = make_url(database_url)
    name = f"{parsed.database}_platform_{secrets.token_hex(3)}"
    admin = parsed.set(drivername="postgresql", database="postgres")
    admin_url = admin.render_as_string(hide_password=False)
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield parsed.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def empty_payment_tables(database_url: str) -> None:
    """Leave the session's payment database as the `db` fixture does for the next module."""
    import_all_models()
    cleaner = Database(database_url)
    try:
        with cleaner.transaction() as session:
            for table in reversed(Base.metadata.sorted_tables):
                session.execute(text(f'DELETE FROM "{table.name}"'))
    finally:
        cleaner.dispose()


@contextmanager
def running_platform(
    database_url: str, tmp_path: Path, **payment_env: str
) -> Iterator[PlatformStack]:
    """A PlatformStack for a test module; on exit every process stops and the session's
    payment database is emptied (the platform's own database is dropped)."""
    with platform_database(database_url, tmp_path) as platform_db:
        running = PlatformStack.start(database_url, platform_db, tmp_path, **payment_env)
        try:
            yield running
        finally:
            try:
                running.stop()
            finally:
                empty_payment_tables(database_url)


@dataclass
class PlatformStack:
    stack: Stack
    database_url: str
    env: dict[str, str]
    port: int
    tmp_path: Path
    server: Server | None = None
    engine: Engine = field(init=False)
    _starts: int = 0

    @classmethod
    def start(
        cls, database_url: str, platform_database_url: str, tmp_path: Path, **payment_env: str
    ) -> PlatformStack:
        """The payment service and worker (Stack), then the reference platform on its origin."""
        payment_env.setdefault("PAYMENT_CALLBACK_RETRY_SCHEDULE", RETRY_SCHEDULE)
        stack = Stack.start(database_url, tmp_path, **payment_env)
        port = urlsplit(stack.platform_url).port
        assert port is not None
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PAYMENT_", "PLATFORM_"))}
        env.update(
            PLATFORM_DATABASE_URL=platform_database_url,
            PLATFORM_PAYMENT_SERVICE_URL=stack.url,
            PLATFORM_API_KEY=stack.api_key,
            PLATFORM_SIGNING_SECRETS=stack.signing_secret,
            PLATFORM_PUBLIC_URL=stack.platform_url,
            PYTHONUNBUFFERED="1",
        )
        platform = cls(stack, platform_database_url, env, port, tmp_path)
        platform.engine = ledger_engine(platform_database_url, pool_size=2)
        try:
            platform.start_platform()
        except BaseException:
            stack.stop()
            raise
        return platform

    @property
    def url(self) -> str:
        return self.stack.platform_url

    def start_platform(self) -> None:
        """`python -m platform_client.demo serve` on the platform's port, until /healthz answers."""
        self._starts += 1
        self.server = Server(
            [sys.executable, "-m", "platform_client.demo", "serve", "--port", str(self.port),
             "--workers", "1", "--threads", "8", "--sweep-every", SWEEP_EVERY],
            self.env, self.port, self.tmp_path / f"platform-{self._starts}.log",
        )  # fmt: skip
        self.server.start(ready_path="/healthz")

    def stop_platform(self) -> None:
        assert self.server is not None
        code = self.server.stop()
        if code != 0:
            raise self.fail(f"the platform exited with {code} after SIGTERM")

    def stop(self) -> None:
        try:
            if self.server is not None and self.server.process is not None:
                self.stop_platform()
        finally:
            self.engine.dispose()
            self.stack.stop()

    # -- diagnostics ---------------------------------------------------------------------

    def logs(self) -> str:
        text_ = self.server.log() if self.server is not None else ""
        tail = "\n".join(text_.splitlines()[-60:])
        return f"{self.stack.logs()}\n--- platform log ---\n{tail}\n"

    def fail(self, message: str) -> StackError:
        return StackError(f"{message}\n{self.logs()}")

    def check(self, condition: object, message: str) -> None:
        if not condition:
            raise self.fail(message)

    def deliveries(self, checkout_id: str) -> list[tuple[str, dict[str, Any]]]:
        """(type, delivery) of each callback event of the checkout, as the events API shows."""
        response = self.stack.api("GET", "/v1/events", params={"checkoutId": checkout_id})
        self.check(response.status_code == 200, f"events: {response.status_code} {response.text}")
        return [(item["type"], item["delivery"]) for item in response.json()["data"]]

    # -- the platform's database: what a person cannot do through pages ---------------------

    def add_tier(self, *, price: int, currency: str = "KRW", capacity: int) -> str:
        """A fresh tier of the seeded event, so that each test counts its own places."""
        tier_id = f"tier_e2e_{uuid.uuid4().hex[:10]}"
        with Session(self.engine) as session, session.begin():
            session.add(
                Tier(
                    id=tier_id, event_id=SEED_EVENT, name=f"E2E {tier_id[-4:]}", price=price,
                    currency=currency, capacity=capacity, question="T-shirt size",
                )
            )  # fmt: skip
        return tier_id

    def make_hold_overdue(self, reservation_id: str) -> None:
        """Move a hold's deadline into the past; the platform's sweeper does the rest."""
        past = datetime.now(UTC) - timedelta(seconds=1)
        with Session(self.engine) as session, session.begin():
            changed = session.execute(
                update(Reservation).where(Reservation.id == reservation_id).values(expires_at=past)
            )
        self.check(changed.rowcount == 1, f"no reservation {reservation_id}")  # type: ignore[attr-defined]
