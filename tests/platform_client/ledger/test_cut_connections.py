"""A paid start whose database connection dies under a statement (a restart, pg_terminate_backend
landing after the pool's checkout check passed the connection) still holds one seat and returns
its checkout, on a fresh connection. PostgreSQL only: SQLite has no server connection to cut."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from platform_client.client import PaymentServiceClient
from platform_client.ledger import CheckoutUnavailable, Ledger, Reservation, ledger_engine
from platform_client.ledger.single import SingleStatement
from tests.db_faults import cutting_proxy
from tests.e2e.processes import free_port
from tests.platform_client.ledger.conftest import CONFIG
from tests.platform_client.ledger.helpers import EVENT, FULL, taken

pytestmark = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)

Cut = Callable[..., None]


def holds_of(engine: Engine, user_id: str) -> list[tuple[str | None, str | None]]:
    with Session(engine) as session:
        rows = session.execute(
            select(Reservation.checkout_id, Reservation.checkout_url).where(
                Reservation.user_id == user_id
            )
        )
        return [tuple(row) for row in rows]


def test_control_a_cut_connection_fails_a_single_statement(engine: Engine, cut_next_checkout: Cut):
    """The harness does cut the connection the statement runs on."""
    cut_next_checkout(engine)
    with pytest.raises(OperationalError) as failed:
        SingleStatement(text("SELECT 1")).first(engine, {})
    assert failed.value.connection_invalidated


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]


def test_a_hold_whose_connection_is_cut_is_taken_on_the_general_path(
    ledger: Ledger, engine: Engine, cut_next_checkout: Cut, caplog: pytest.LogCaptureFixture
):
    cut_next_checkout(engine)  # the first checkout: the one-statement hold's
    started = ledger.start_registration("u_1", EVENT, FULL, {})
    assert warnings_of(caplog) == ["ledger.hold_at_once_disconnected"]
    assert started.checkout_url
    assert holds_of(engine, "u_1") == [(started.checkout_id, started.checkout_url)]
    assert taken(engine, FULL) == 1


def test_a_checkout_url_whose_connection_is_cut_is_stored_on_a_fresh_one(
    ledger: Ledger, engine: Engine, cut_next_checkout: Cut, caplog: pytest.LogCaptureFixture
):
    cut_next_checkout(engine, skip=1)  # the second checkout: the checkoutUrl's UPDATE
    started = ledger.start_registration("u_1", EVENT, FULL, {})
    assert warnings_of(caplog) == ["ledger.store_checkout_reconnected"]
    assert holds_of(engine, "u_1") == [(started.checkout_id, started.checkout_url)]
    repeated = ledger.start_registration("u_1", EVENT, FULL, {})  # a double submit: same one
    assert (repeated.checkout_id, repeated.checkout_url) == (
        started.checkout_id,
        started.checkout_url,
    )
    assert taken(engine, FULL) == 1


def test_a_hold_that_committed_before_its_connection_died_is_this_submits_own(
    ledger_database_url: str, engine: Engine, ledger: Ledger, caplog: pytest.LogCaptureFixture
):
    """The one-statement hold commits and its reply is lost. The general path finds the hold
    by its id: it is this submit's, so when the checkout then fails it is given back (an
    earlier submit's hold would be left to its owner)."""
    unreachable = PaymentServiceClient(f"http://127.0.0.1:{free_port()}", "sk_test", retries=0)
    with cutting_proxy(ledger_database_url) as proxy, unreachable:
        proxied = ledger_engine(proxy.url(ledger_database_url), pool_size=2)
        try:
            proxy.arm(b"WITH seat AS (")
            with caplog.at_level("INFO"), pytest.raises(CheckoutUnavailable):
                Ledger(proxied, unreachable, CONFIG).start_registration("u_1", EVENT, FULL, {})
        finally:
            proxied.dispose()
    assert proxy.cuts == 1
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("platform_client")]
    assert "ledger.hold_at_once_disconnected" in messages
    unavailable = [r for r in caplog.records if r.getMessage() == "ledger.checkout_unavailable"]
    assert [r.released for r in unavailable] == [True]
    assert taken(engine, FULL) == 0
    assert holds_of(engine, "u_1") == [(None, None)]  # the one hold, given back


def test_a_checkout_url_whose_update_committed_before_its_connection_died_is_returned(
    ledger_database_url: str, engine: Engine, ledger: Ledger, payment_client: PaymentServiceClient,
    caplog: pytest.LogCaptureFixture,
):  # fmt: skip
    """The checkout URL's UPDATE commits and its reply is lost: the repeat on a fresh connection
    changes nothing. The row shows this submit's checkout, so it is stored, not a hold released
    meanwhile: the submit returns it (and cancels nothing)."""
    with cutting_proxy(ledger_database_url) as proxy:
        proxied = ledger_engine(proxy.url(ledger_database_url), pool_size=2)
        try:
            proxy.arm(b"UPDATE ledger_reservations SET checkout_id")
            started = Ledger(proxied, payment_client, CONFIG).start_registration(
                "u_1", EVENT, FULL, {}
            )
        finally:
            proxied.dispose()
    assert proxy.cuts == 1
    assert warnings_of(caplog) == ["ledger.store_checkout_reconnected"]
    assert started.checkout_url
    assert holds_of(engine, "u_1") == [(started.checkout_id, started.checkout_url)]
    checkout = payment_client.get_checkout(started.checkout_id or "")
    assert checkout.status == "open"
    assert taken(engine, FULL) == 1
