"""Ledger fixtures: its own database per backend (the platform's, not the payment service's),
the real payment service over HTTP for checkouts, and a clock that can be moved forward."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from flask import Flask
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from platform_client.client import PaymentServiceClient
from platform_client.ledger import (
    Ledger,
    LedgerBase,
    LedgerConfig,
    create_schema,
    ledger_engine,
    utcnow,
)
from tests.conftest import _create_postgres_database, _drop_postgres_database
from tests.factories import PLATFORM_ORIGIN, MerchantCredentials
from tests.platform_client.ledger.helpers import seed
from tests.platform_client.servers import serving

CONFIG = LedgerConfig(
    callback_url=f"{PLATFORM_ORIGIN}/hooks/ticket-payments",
    success_url=f"{PLATFORM_ORIGIN}/registrations/{{reservation_id}}?payment=success",
    cancel_url=f"{PLATFORM_ORIGIN}/registrations/{{reservation_id}}?payment=cancel",
    provider="sandbox",
)


@dataclass
class Clock:
    """Real time plus an offset the test moves forward (the payment service keeps real time)."""

    offset: timedelta = field(default_factory=timedelta)

    def __call__(self):  # type: ignore[no-untyped-def]
        return utcnow() + self.offset

    def advance(self, **delta: float) -> None:
        self.offset += timedelta(**delta)


@pytest.fixture(scope="session")
def ledger_database_url(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The platform's own database on the same backend as ``database_url``."""
    if make_url(database_url).get_backend_name() == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('ledger') / 'platform.db'}"
        create_schema(engine := ledger_engine(url))
        engine.dispose()
        yield url
        return
    name, url = _create_postgres_database()
    try:
        create_schema(engine := ledger_engine(url))
        engine.dispose()
        yield url
    finally:
        _drop_postgres_database(name)


@pytest.fixture
def engine(ledger_database_url: str) -> Iterator[Engine]:
    """The ledger's engine; its tables are emptied after each test."""
    engine = ledger_engine(ledger_database_url, pool_size=5)
    try:
        yield engine
    finally:
        engine.dispose()
        cleaner = ledger_engine(ledger_database_url)
        with cleaner.begin() as connection:
            for table in reversed(LedgerBase.metadata.sorted_tables):
                connection.execute(text(f'DELETE FROM "{table.name}"'))
        cleaner.dispose()


@pytest.fixture
def service_url(app: Flask) -> Iterator[str]:
    with serving(app) as url:
        yield url


@pytest.fixture
def payment_client(
    service_url: str, merchant: MerchantCredentials
) -> Iterator[PaymentServiceClient]:
    with PaymentServiceClient(service_url, merchant.api_key, backoff_factor=0.01) as client:
        yield client


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def ledger(engine: Engine, payment_client: PaymentServiceClient, clock: Clock) -> Ledger:
    ledger = Ledger(engine, payment_client, CONFIG, clock=clock)
    seed(ledger)
    return ledger
