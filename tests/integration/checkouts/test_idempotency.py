"""Idempotency-Key semantics of CONTRACT §5, as Stripe has them."""

import json
from datetime import timedelta

from sqlalchemy import func, select

from payment_service.checkouts.models import Checkout
from payment_service.db import utcnow
from payment_service.idempotency.models import COMPLETED, IN_PROGRESS, IdempotencyRecord
from payment_service.idempotency.services import purge_expired
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


def test_a_request_still_in_flight_is_409(create, merchant, db):
    from payment_service.idempotency.services import fingerprint

    body = checkout_payload()
    _insert_record(db, merchant.merchant_id, "busy", state=IN_PROGRESS, age=timedelta(seconds=1),
                   fingerprint=fingerprint("POST", "/v1/ticket-checkouts", body))  # fmt: skip
    response = create(body, key="busy")
    assert response.status_code == 409
    assert response.get_json()["error"]["code"] == "idempotency_key_in_use"
    assert count(db, Checkout) == 0


def test_a_claim_abandoned_by_a_dead_process_is_taken_over(create, merchant, db):
    from payment_service.idempotency.services import fingerprint

    body = checkout_payload()
    _insert_record(db, merchant.merchant_id, "orphan", state=IN_PROGRESS, age=timedelta(minutes=10),
                   fingerprint=fingerprint("POST", "/v1/ticket-checkouts", body))  # fmt: skip
    assert create(body, key="orphan").status_code == 201


def test_records_expire_after_24_hours(create, merchant, db):
    _insert_record(db, merchant.merchant_id, "old", state=COMPLETED, age=timedelta(hours=25))
    response = create(key="old")  # a different fingerprint, but the old record is expired
    assert response.status_code == 201
    _insert_record(db, merchant.merchant_id, "older", state=COMPLETED, age=timedelta(hours=30))
    _insert_record(db, merchant.merchant_id, "recent", state=COMPLETED, age=timedelta(hours=1))
    assert purge_expired(db) == 1
    with db.transaction() as session:
        assert sorted(session.scalars(select(IdempotencyRecord.key))) == ["old", "recent"]
