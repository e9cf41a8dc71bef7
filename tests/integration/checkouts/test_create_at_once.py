"""PostgreSQL's usual create: the checkout and its key's stored answer in one statement
(at_once.create_at_once), and every unusual case handed back to the general path unchanged."""

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import OperationalError
from structlog.testing import capture_logs

from payment_service import rawsql
from payment_service.checkouts import at_once, services
from payment_service.checkouts.models import Checkout
from payment_service.db import utcnow
from payment_service.errors import IdempotencyKeyInUse
from payment_service.idempotency.models import IdempotencyRecord
from payment_service.idempotency.services import StoredResponse, lock_id
from payment_service.merchants.models import Merchant
from payment_service.rawsql import Statement
from shared_contracts.checkouts import CreateCheckoutSchema
from tests.db_faults import cutting_proxy
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


def test_control_a_connection_cut_after_the_check_fails_the_statement(db, cut_next_checkout):
    """The harness does produce the race: the one statement fails on the cut connection."""
    cut_next_checkout(db.engine)
    with pytest.raises(OperationalError) as failed, rawsql.single_statements(db) as tx:
        tx.first(Statement(text("SELECT 1")))
    assert failed.value.connection_invalidated


def test_a_connection_cut_under_the_statement_leaves_it_to_the_general_path(
    db, new, cut_next_checkout
):
    cut_next_checkout(db.engine)
    assert at_once.create_at_once(db, new(), "k1", "f" * 64, ANSWER) is False
    assert rows(db) == ([], [])  # nothing went in; the next checkout got a live connection


def test_a_create_whose_connection_is_cut_still_answers_201(
    app, client, merchant, cut_next_checkout
):
    """Through the API: the one-statement create fails on the cut connection and the general
    path creates the checkout on a fresh one. Without the fallback this request was a 500."""
    payload = checkout_payload("res_cut")
    headers = {**merchant.auth, "Idempotency-Key": "k-cut"}
    warm = client.get("/v1/ticket-checkouts?reservationId=res_cut", headers=merchant.auth)
    assert (
        warm.status_code == 200
    )  # the merchant is cached: the create's first checkout is at_once's
    app_db = app.extensions["payment_db"]
    cut_next_checkout(app_db.engine)
    with capture_logs() as logs:
        created = client.post("/v1/ticket-checkouts", json=payload, headers=headers)
    assert "checkout.create_at_once_disconnected" in [line["event"] for line in logs]
    assert created.status_code == 201, created.get_json()
    assert "Idempotent-Replayed" not in created.headers
    assert rows(app_db)[0] == [created.get_json()["checkoutId"]]
    replay = client.post("/v1/ticket-checkouts", json=payload, headers=headers)
    assert replay.data == created.data and replay.headers["Idempotent-Replayed"] == "true"


def test_a_create_that_committed_before_its_connection_died_is_answered_as_a_create(
    settings, database_url, merchant
):
    """The one statement commits and the reply is lost: the general path finds the stored
    answer, which is this request's own (it names its new checkout), so not a replay."""
    from dataclasses import replace

    from payment_service import close_app, create_app

    with cutting_proxy(database_url) as proxy:
        app = create_app(replace(settings, database_url=proxy.url(database_url)))
        try:
            client, headers = app.test_client(), {**merchant.auth, "Idempotency-Key": "k-lost"}
            warm = client.get("/v1/ticket-checkouts?reservationId=r", headers=merchant.auth)
            assert warm.status_code == 200
            proxy.arm(b"new_answer AS")
            with capture_logs() as logs:
                created = client.post("/v1/ticket-checkouts", json=checkout_payload("res_lost"),
                                      headers=headers)  # fmt: skip
            assert proxy.cuts == 1  # the statement reached the server; its reply was lost
            assert created.status_code == 201, created.get_json()
            assert "Idempotent-Replayed" not in created.headers
            events = [line["event"] for line in logs]
            assert "checkout.create_at_once_disconnected" in events
            app_db = app.extensions["payment_db"]
            assert rows(app_db)[0] == [created.get_json()["checkoutId"]]
            replay = client.post(
                "/v1/ticket-checkouts", json=checkout_payload("res_lost"), headers=headers
            )
            assert replay.data == created.data and replay.headers["Idempotent-Replayed"] == "true"
        finally:
            close_app(app)
