"""ledger_engine's database errors do not carry bound values: a buyer's e-mail address, bound
into a statement that fails, must not reach the logs with the exception's text."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from platform_client.ledger import Ledger, Reservation
from tests.platform_client.ledger.helpers import EVENT, FULL

EMAIL = "kim.buyer@example.com"


def test_a_failing_statement_with_a_buyers_email_bound_does_not_show_it(
    ledger: Ledger, engine: Engine
):
    started = ledger.start_registration("u_1", EVENT, FULL, {}, email=EMAIL)
    with Session(engine) as session:
        stored = session.scalars(select(Reservation)).one()
        row = {column.key: getattr(stored, column.key) for column in Reservation.__mapper__.columns}
    assert row["id"] == started.reservation_id and row["email"] == EMAIL
    with pytest.raises(IntegrityError) as failed, engine.begin() as connection:
        connection.execute(insert(Reservation), row)  # the same id again: the primary key
    assert EMAIL not in str(failed.value)
    assert "ledger_reservations" in str(failed.value)  # still says what failed
