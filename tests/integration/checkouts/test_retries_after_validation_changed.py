"""A retry that the clock or the merchant's settings would now refuse still replays the first
answer (CONTRACT §5: same key + same body within 24 h replays it byte for byte)."""

import socket
import time
from dataclasses import replace
from datetime import UTC, timedelta

from sqlalchemy import func, select

from payment_service.checkouts.models import Checkout
from payment_service.db import utcnow
from payment_service.idempotency.models import IdempotencyRecord
from tests.factories import checkout_payload


def count(db, model):
    with db.transaction() as session:
        return session.scalar(select(func.count()).select_from(model))


def wire_time(moment):
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def near_the_lower_bound():
    """An expiresAt 61 to 62 s away: valid now (>= 60 s), refused a second or two later."""
    expires_at = (utcnow() + timedelta(seconds=62)).replace(microsecond=0)
    return expires_at, checkout_payload(expiresAt=wire_time(expires_at))


def wait_until_refused(expires_at):
    while utcnow() <= expires_at - timedelta(seconds=60):
        time.sleep(0.05)


def private_resolver(host, port, **_):
    """DNS as it may answer later: the callback host now points into a private network."""
    return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.7", port))]


def test_a_retry_after_expires_at_left_the_window_replays_the_first_answer(create, db):
    expires_at, payload = near_the_lower_bound()
    first = create(payload, key="near-bound")
    assert first.status_code == 201, first.get_json()
    wait_until_refused(expires_at)
    assert create(checkout_payload("res_new", expiresAt=payload["expiresAt"])).status_code == 422

    retry = create(payload, key="near-bound")
    assert retry.status_code == 201, retry.get_json()
    assert retry.data == first.data
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert count(db, Checkout) == 1


def test_a_retry_whose_callback_url_is_now_refused_replays_the_first_answer(app, create):
    first = create(key="dns-moved")
    assert first.status_code == 201
    policy = app.extensions["payment_policy"]
    app.extensions["payment_policy"] = replace(policy, resolve=private_resolver)
    assert create(checkout_payload("res_new")).get_json()["error"]["code"] == "url_not_allowed"

    retry = create(key="dns-moved")
    assert retry.status_code == 201 and retry.data == first.data
    assert retry.headers["Idempotent-Replayed"] == "true"


def test_a_refused_request_under_a_used_key_is_the_reused_key_error(create, db):
    assert create(key="used").status_code == 201
    too_soon = wire_time(utcnow() + timedelta(seconds=5))
    response = create(key="used", expiresAt=too_soon)
    assert response.status_code == 422
    assert response.get_json()["error"]["code"] == "idempotency_key_reused"
    assert count(db, IdempotencyRecord) == 1
