"""A paid start whose database connection dies under a statement (a restart, pg_terminate_backend
landing after the pool's checkout check passed the connection) still holds one seat and returns
its checkout, on a fresh connection. PostgreSQL only: SQLite has no server connection to cut."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from platform_client.ledger import Ledger, Reservation
from platform_client.ledger.single import SingleStatement
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


def test_a_hold_whose_connection_is_cut_is_taken_on_the_general_path(
    ledger: Ledger, engine: Engine, cut_next_checkout: Cut
):
    cut_next_checkout(engine)  # the first checkout: the one-statement hold's
    started = ledger.start_registration("u_1", EVENT, FULL, {})
    assert started.checkout_url
    assert holds_of(engine, "u_1") == [(started.checkout_id, started.checkout_url)]
    assert taken(engine, FULL) == 1


def test_a_checkout_url_whose_connection_is_cut_is_stored_on_a_fresh_one(
    ledger: Ledger, engine: Engine, cut_next_checkout: Cut
):
    cut_next_checkout(engine, skip=1)  # the second checkout: the checkoutUrl's UPDATE
    started = ledger.start_registration("u_1", EVENT, FULL, {})
    assert holds_of(engine, "u_1") == [(started.checkout_id, started.checkout_url)]
    repeated = ledger.start_registration("u_1", EVENT, FULL, {})  # a double submit: same one
    assert (repeated.checkout_id, repeated.checkout_url) == (
        started.checkout_id,
        started.checkout_url,
    )
    assert taken(engine, FULL) == 1
