"""The service's database errors do not carry bound values: a buyer's e-mail address, bound
into a statement that fails, must not reach the logs with the exception's text."""

from __future__ import annotations

import pytest
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from payment_service.checkouts.models import Checkout
from payment_service.sandbox_psp.models import CheckoutSession, SandboxBase
from payment_service.sandbox_psp.store import Store
from tests.factories import checkout_payload

EMAIL = "kim.buyer@example.com"


def test_a_failing_statement_with_a_buyers_email_bound_does_not_show_it(client, merchant, db):
    payload = checkout_payload(customer={"email": EMAIL})
    headers = {**merchant.auth, "Idempotency-Key": "db-errors-1"}
    assert client.post("/v1/ticket-checkouts", json=payload, headers=headers).status_code == 201
    with db.transaction() as session:
        stored = session.scalars(select(Checkout)).one()
        row = {attr.key: getattr(stored, attr.key) for attr in Checkout.__mapper__.column_attrs}
    assert EMAIL in repr(row)  # the buyer's address is among the values bound below
    with pytest.raises(IntegrityError) as failed, db.engine.begin() as connection:
        connection.execute(insert(Checkout), row)  # the same id again: the primary key
    assert EMAIL not in str(failed.value)
    assert "checkouts" in str(failed.value)  # still says what failed


def test_the_sandboxs_database_errors_do_not_show_bound_values(database_url):
    """The sandbox stores return URLs, whose `?t=` is a checkout page's token."""
    store = Store(database_url)  # for this test, the sandbox's tables beside the service's
    token = "WyJjaGtfc2VjcmV0IiwxNzk1MzU3OTYxXQ.NfqUu2IbUpOj03U"
    try:
        store.create_all()
        with pytest.raises(IntegrityError) as failed, store.engine.begin() as connection:
            # Only two of the columns: a NOT NULL one left empty makes it fail.
            connection.execute(
                insert(CheckoutSession),
                {"id": "sbs_1", "return_url": f"http://127.0.0.1:8000/return?t={token}"},
            )
    finally:
        SandboxBase.metadata.drop_all(store.engine)  # the service's schema must stay its own
        store.dispose()
    assert token not in str(failed.value)
    assert "sandbox_sessions" in str(failed.value)
