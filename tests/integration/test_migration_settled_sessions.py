"""Migration 0007 on both databases: checkouts that left `open` before the upgrade count as
settled, so the first sweep after it does not ask the provider about every old session, also
when the backfill takes several batches; and the downgrade takes the column and its index away
again."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import create_engine, insert, inspect, select, text
from sqlalchemy.engine import make_url

from payment_service.checkouts.expiry import sweep
from payment_service.checkouts.models import Checkout
from payment_service.db import Database, utcnow
from payment_service.migrate import alembic_config, upgrade
from payment_service.providers.registry import ProviderRegistry
from tests.conftest import _create_postgres_database, _drop_postgres_database
from tests.factories import make_merchant
from tests.integration.providers.conftest import Scripted, make_provider, serving

CLOSED = utcnow().replace(microsecond=0) - timedelta(days=3)


@pytest.fixture
def database_at_0006(database_url: str, tmp_path: Path) -> Iterator[str]:
    """A new database of the same backend as ``database_url``, migrated to 0006 only."""
    if make_url(database_url).get_backend_name() == "sqlite":
        url = f"sqlite:///{tmp_path / 'at-0006.db'}"
        upgrade(url, "0006")
        yield url
        return
    name, url = _create_postgres_database()
    try:
        upgrade(url, "0006")
        yield url
    finally:
        _drop_postgres_database(name)


def add_old_checkout(
    db: Database, merchant_id: str, name: str, status: str, *, session: bool,
    closed_at: datetime | None,
) -> None:  # fmt: skip
    """A checkout row as the code before 0007 wrote it (no provider_session_settled_at)."""
    values: dict[str, Any] = {
        "id": f"chk_{name}", "merchant_id": merchant_id, "reservation_id": f"res_{name}",
        "event_id": "evt_42", "tier_id": "tier_7", "order_name": "Seoul Marathon",
        "amount": 30000, "currency": "KRW", "success_url": "https://platform.test/ok",
        "cancel_url": "https://platform.test/back", "callback_url": "https://platform.test/hooks",
        "provider": "sandbox", "status": status, "closed_at": closed_at,
        "provider_session_id": f"sbs_{name}" if session else None,
        "expires_at": utcnow() + timedelta(minutes=30),
    }  # fmt: skip
    with db.transaction() as tx:
        # Core, with these columns only: the model's table has the column 0006 lacks.
        tx.execute(insert(Checkout).values(**values))


def settled_at(db: Database) -> dict[str, datetime | None]:
    with db.transaction() as tx:
        return {
            checkout.id: checkout.provider_session_settled_at
            for checkout in tx.scalars(select(Checkout))
        }


def test_an_upgrade_counts_checkouts_that_left_open_as_settled(database_at_0006: str) -> None:
    old = Database(database_at_0006)
    merchant_id = make_merchant(old).merchant_id
    add_old_checkout(old, merchant_id, "canceled", "canceled", session=True, closed_at=CLOSED)
    add_old_checkout(old, merchant_id, "failed", "failed", session=True, closed_at=None)
    add_old_checkout(old, merchant_id, "paid", "paid", session=True, closed_at=CLOSED)
    add_old_checkout(old, merchant_id, "open", "open", session=True, closed_at=None)
    add_old_checkout(old, merchant_id, "nosession", "canceled", session=False, closed_at=CLOSED)
    old.dispose()

    before = utcnow()
    upgrade(database_at_0006)
    db = Database(database_at_0006)
    try:
        settled = settled_at(db)
        failed_at = settled.pop("chk_failed")
        assert failed_at is not None and before <= failed_at <= utcnow()  # no closed_at: now
        assert settled == {
            "chk_canceled": CLOSED, "chk_paid": CLOSED,
            "chk_open": None,  # the sweep settles it once it is overdue
            "chk_nosession": None,  # no session to settle
        }  # fmt: skip

        scripted = Scripted()  # answers 500 to anything: nothing should be asked
        with serving(scripted) as url, make_provider(url) as adapter:
            assert sweep(db, ProviderRegistry([adapter]), now=utcnow()) == 0
        assert scripted.requests == []
    finally:
        db.dispose()

    command.downgrade(alembic_config(database_at_0006), "0006")
    engine = Database(database_at_0006).engine
    try:
        table = inspect(engine)
        assert "provider_session_settled_at" not in {
            c["name"] for c in table.get_columns("checkouts")
        }
        assert "ix_checkouts_unsettled_session_updated_at" not in {
            index["name"] for index in table.get_indexes("checkouts")
        }
    finally:
        engine.dispose()
    upgrade(database_at_0006)  # and up again


def test_a_backfill_in_batches_settles_the_same_checkouts(database_at_0006: str) -> None:
    old = Database(database_at_0006)
    merchant_id = make_merchant(old).merchant_id
    for name in ("a", "b", "c", "d", "e"):  # five to settle, two at a time
        add_old_checkout(old, merchant_id, name, "canceled", session=True, closed_at=CLOSED)
    add_old_checkout(old, merchant_id, "open", "open", session=True, closed_at=None)
    add_old_checkout(old, merchant_id, "nosession", "canceled", session=False, closed_at=CLOSED)
    old.dispose()

    config = alembic_config(database_at_0006)
    config.attributes["backfill_batch"] = 2
    command.upgrade(config, "head")

    db = Database(database_at_0006)
    try:
        assert settled_at(db) == {
            **{f"chk_{name}": CLOSED for name in ("a", "b", "c", "d", "e")},
            "chk_open": None, "chk_nosession": None,
        }  # fmt: skip
    finally:
        db.dispose()
    if make_url(database_at_0006).get_backend_name() == "postgresql":
        # Each batch committed on its own (a row's xmin is the transaction that wrote it):
        # one statement for all would have held every row lock until the end.
        assert backfill_transactions(database_at_0006) >= 3


def backfill_transactions(url: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return int(
                connection.scalar(
                    text(
                        "SELECT count(DISTINCT xmin::text) FROM checkouts"
                        " WHERE provider_session_settled_at IS NOT NULL"
                    )
                )
            )
    finally:
        engine.dispose()
