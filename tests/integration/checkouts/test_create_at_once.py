"""PostgreSQL's usual create: the checkout and its key's stored answer in one statement
(at_once.create_at_once), and every unusual case handed back to the general path unchanged."""

import pytest
from sqlalchemy import func, select, text

from payment_service.checkouts import at_once, services
from payment_service.checkouts.models import Checkout
from payment_service.db import utcnow
from payment_service.errors import IdempotencyKeyInUse
from payment_service.idempotency.models import IdempotencyRecord
from payment_service.idempotency.services import StoredResponse, lock_id
from payment_service.merchants.models import Merchant
from shared_contracts.checkouts import CreateCheckoutSchema
from tests.factories import checkout_payload

pytestmark = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)

ANSWER = StoredResponse(201, b'{"checkoutId":"..."}', {"Content-Type": "application/json"})


@pytest.fixture
def new(db, merchant):
    with db.transaction() as session:
        owner = session.get(Merchant, merchant.merchant_id)

    def _new(reservation_id="res_1"):
        data = CreateCheckoutSchema().load(checkout_payload(reservation_id))
        return services.new_checkout(owner, data, request_id="req_test", now=utcnow())

    return _new


def rows(db):
    with db.transaction() as session:
        checkouts = session.scalars(select(Checkout.id)).all()
        answers = session.execute(
            select(IdempotencyRecord.key, IdempotencyRecord.response_body)
        ).all()
    return sorted(checkouts), sorted(answers)


def test_a_new_key_and_reservation_store_both_rows(db, new):
    checkout = new()
    assert at_once.create_at_once(db, checkout, "k1", "f" * 64, ANSWER) is True
    assert rows(db) == ([checkout.id], [("k1", ANSWER.body)])
    with db.transaction() as session:
        stored = session.get(Checkout, checkout.id)
        assert (stored.status, stored.amount, stored.metadata_) == ("open", 30000, {})
        assert stored.expires_at == checkout.expires_at


def test_a_key_with_an_answer_changes_nothing(db, new):
    first = new()
    at_once.create_at_once(db, first, "k1", "f" * 64, ANSWER)
    before = rows(db)
    assert at_once.create_at_once(db, new("res_2"), "k1", "f" * 64, ANSWER) is False
    assert rows(db) == before


def test_a_reservation_with_a_live_checkout_changes_nothing(db, new):
    at_once.create_at_once(db, new(), "k1", "f" * 64, ANSWER)
    before = rows(db)
    assert at_once.create_at_once(db, new(), "k2", "f" * 64, ANSWER) is False
    assert rows(db) == before


def test_a_key_held_by_another_request_is_in_use(db, new, merchant):
    with db.engine.connect() as other:
        other.execute(
            text("SELECT pg_advisory_lock(:id)"), {"id": lock_id(merchant.merchant_id, "k1")}
        )
        with pytest.raises(IdempotencyKeyInUse):
            at_once.create_at_once(db, new(), "k1", "f" * 64, ANSWER)
        other.execute(text("SELECT pg_advisory_unlock_all()"))
        other.commit()
    with db.transaction() as session:
        assert session.scalar(select(func.count()).select_from(Checkout)) == 0


def test_the_pooled_connection_goes_back_in_transactions_mode(db, new):
    at_once.create_at_once(db, new(), "k1", "f" * 64, ANSWER)
    assert db.engine.pool.checkedin() == 1  # the one it used is the one checked out below
    with db.engine.connect() as connection:
        assert connection.connection.dbapi_connection.autocommit is False
