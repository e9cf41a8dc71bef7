"""Idempotency-Key semantics of CONTRACT §5, as Stripe has them."""

import json
import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, insert, select, text

from payment_service.checkouts.models import Checkout
from payment_service.db import utcnow
from payment_service.idempotency.models import COMPLETED, IdempotencyRecord
from payment_service.idempotency.services import fingerprint, lock_id, purge_expired
from tests.factories import checkout_payload


def count(db, model):
    with db.transaction() as session:
        return session.scalar(select(func.count()).select_from(model))


def test_same_key_and_body_replays_byte_for_byte(create, db):
    first = create(key="k1")
    second = create(key="k1")
    assert first.status_code == second.status_code == 201
    assert second.data == first.data
    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.headers["X-Request-ID"] != first.headers["X-Request-ID"]
    assert count(db, Checkout) == 1


def test_key_order_and_spacing_do_not_change_the_request(client, merchant, create):
    first = create(key="k2")
    reordered = json.dumps(dict(reversed(list(checkout_payload().items()))), indent=4)
    second = client.post(
        "/v1/ticket-checkouts", data=reordered, content_type="application/json",
        headers={**merchant.auth, "Idempotency-Key": "k2"},
    )  # fmt: skip
    assert second.status_code == 201 and second.data == first.data
    assert second.headers["Idempotent-Replayed"] == "true"


def test_same_key_with_a_different_body_is_422(create, db):
    create(key="k3")
    response = create(key="k3", amount=40000)
    assert response.status_code == 422
    assert response.get_json()["error"]["code"] == "idempotency_key_reused"
    assert count(db, Checkout) == 1


def test_validation_errors_are_not_stored(create):
    bad = create(key="k4", amount=1.5)
    assert bad.status_code == 422
    good = create(key="k4")
    assert good.status_code == 201
    assert "Idempotent-Replayed" not in good.headers


def test_url_and_conflict_errors_are_not_stored(create, db):
    assert create(key="k5", successUrl="https://evil.example/").status_code == 422
    assert create(key="k5").status_code == 201  # same key, corrected body: runs
    conflict = create(key="k6")
    assert conflict.get_json()["error"]["code"] == "checkout_exists"
    with db.transaction() as session:
        assert session.scalars(select(IdempotencyRecord.key)).all() == ["k5"]


def test_keys_are_scoped_per_merchant(create, other_merchant, db):
    assert create(key="shared").status_code == 201
    response = create(
        key="shared", creds=other_merchant, successUrl="https://other.example/ok",
        cancelUrl="https://other.example/no", callbackUrl="https://other.example/hooks",
    )  # fmt: skip
    assert response.status_code == 201
    assert "Idempotent-Replayed" not in response.headers
    assert count(db, Checkout) == 2


def _insert_record(db, merchant_id, key, *, state, age, fingerprint="f" * 64):
    now = utcnow()
    with db.transaction() as session:
        session.add(
            IdempotencyRecord(merchant_id=merchant_id, key=key, fingerprint=fingerprint, state=state,
                              created_at=now - age, locked_at=now - age)
        )  # fmt: skip


def test_a_request_still_in_flight_is_409(create, merchant, db, app):
    """PostgreSQL: a request holds its key's advisory lock for its whole transaction, and a
    second request with the key answers 409 at once. SQLite has a single writer (BEGIN
    IMMEDIATE) for the whole transaction, so two requests are never in flight together: the
    second waits for the first to commit and then replays its answer."""
    body = checkout_payload()
    request_fingerprint = fingerprint("POST", "/v1/ticket-checkouts", body)
    if db.is_postgresql:
        with db.transaction() as session:  # stands for the first request, still running
            session.execute(text("SELECT pg_advisory_xact_lock(:id)"),
                            {"id": lock_id(merchant.merchant_id, "busy")})  # fmt: skip
            response = create(body, key="busy")
            assert response.status_code == 409
            assert response.get_json()["error"]["code"] == "idempotency_key_in_use"
        assert count(db, Checkout) == 0
        assert create(body, key="busy").status_code == 201  # the lock is gone with its holder
        return

    answers = []
    second = threading.Thread(target=lambda: answers.append(create(body, key="busy")))
    with db.transaction() as session:  # the first request: holds the write lock, stores its answer
        session.execute(insert(IdempotencyRecord.__table__).values(
            merchant_id=merchant.merchant_id, key="busy", fingerprint=request_fingerprint,
            state=COMPLETED, response_status=201, response_headers={}, response_body=b"first",
            created_at=utcnow(), locked_at=utcnow(),
        ))  # fmt: skip
        second.start()
        second.join(0.5)
        assert second.is_alive()  # waiting for the writer, not running beside it
    second.join(10)
    [response] = answers
    assert (response.status_code, response.data) == (201, b"first")
    assert response.headers["Idempotent-Replayed"] == "true"
    assert count(db, Checkout) == 0


def test_a_request_that_dies_mid_way_leaves_nothing_behind(create, db, monkeypatch):
    """The checkout and the stored answer share one transaction: a request that fails after
    inserting its checkout (as a process dying there would) leaves neither, so a retry runs.
    This is the general path; on PostgreSQL the usual create is one statement, which has no
    "mid-way" (see the next test)."""
    from payment_service.checkouts import at_once
    from payment_service.checkouts import services as checkout_services

    monkeypatch.setattr(at_once, "create_at_once", lambda *args, **kwargs: False)
    original = checkout_services.create_checkout

    def dies_after_the_insert(*args, **kwargs):
        original(*args, **kwargs)
        raise RuntimeError("the process died here")

    monkeypatch.setattr(checkout_services, "create_checkout", dies_after_the_insert)
    assert create(key="dies").status_code == 500
    assert count(db, Checkout) == count(db, IdempotencyRecord) == 0
    monkeypatch.setattr(checkout_services, "create_checkout", original)
    retry = create(key="dies")
    assert retry.status_code == 201
    assert "Idempotent-Replayed" not in retry.headers


# SQLite runs a whole request under its single writer lock: this race cannot happen there.
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_an_answer_that_cannot_be_stored_undoes_its_checkout(create, merchant, db):
    """PostgreSQL's one-statement create: its checkout insert and its answer insert commit
    together or not at all. Here another transaction stores an answer under the key after the
    statement took its snapshot (so it inserts the checkout), and commits: the answer insert
    fails on the key's unique index, the checkout goes with it, and the request falls back to
    the general path, which finds that answer (another body: 422)."""
    first = db.engine.connect()
    transaction = first.begin()
    first.execute(insert(IdempotencyRecord.__table__).values(
        merchant_id=merchant.merchant_id, key="contested", fingerprint="f" * 64,
        state=COMPLETED, response_status=201, response_headers={}, response_body=b"first",
        created_at=utcnow(), locked_at=utcnow(),
    ))  # fmt: skip
    answers = []
    request = threading.Thread(target=lambda: answers.append(create(key="contested")))
    request.start()
    request.join(0.5)
    assert request.is_alive()  # its answer insert waits for the uncommitted one
    transaction.commit()
    first.close()
    request.join(10)
    [response] = answers
    assert response.status_code == 422
    assert response.get_json()["error"]["code"] == "idempotency_key_reused"
    assert count(db, Checkout) == 0
    assert count(db, IdempotencyRecord) == 1


def test_records_expire_after_24_hours(create, merchant, db):
    _insert_record(db, merchant.merchant_id, "old", state=COMPLETED, age=timedelta(hours=25))
    response = create(key="old")  # a different fingerprint, but the old record is expired
    assert response.status_code == 201
    _insert_record(db, merchant.merchant_id, "older", state=COMPLETED, age=timedelta(hours=30))
    _insert_record(db, merchant.merchant_id, "recent", state=COMPLETED, age=timedelta(hours=1))
    assert purge_expired(db) == 1
    with db.transaction() as session:
        assert sorted(session.scalars(select(IdempotencyRecord.key))) == ["old", "recent"]
