"""Claims, leases, classification and retries of deliveries (CONTRACT §8), on both databases."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
from sqlalchemy import Select, select, update

from payment_service.callbacks import dispatcher
from payment_service.callbacks.dispatcher import (
    AttemptResult,
    attempt_delivery,
    claim_due,
    record_result,
)
from payment_service.callbacks.models import CallbackEvent, Delivery
from payment_service.callbacks.sender import EXCERPT_BYTES, REJECTION_BYTES
from payment_service.db import utcnow
from tests.integration.callbacks.conftest import Reply, add_checkout, add_event, add_paid_event
from tests.integration.callbacks.helpers import attempts_of, delivery_of, refunds_of
from tests.races import race

SCHEDULE = (0, 1, 2)


def test_every_event_gets_a_pending_delivery_in_its_transaction(db, receiver, platform):
    event_id = add_event(db, add_checkout(db, platform.merchant_id, receiver.url()))
    delivery = delivery_of(db, event_id)
    with db.transaction() as session:
        event = session.scalars(select(CallbackEvent).where(CallbackEvent.id == event_id)).one()
    assert (delivery.status, delivery.attempts, delivery.seq) == ("pending", 0, event.seq)
    assert delivery.next_attempt_at <= utcnow() and delivery.lease_owner is None


def test_503_then_200_is_retried_on_the_schedule_with_the_same_webhook_id(db, receiver, platform):
    receiver.script(Reply(503, b"busy"), Reply(200))
    event_id = add_event(db, add_checkout(db, platform.merchant_id, receiver.url()))
    start = utcnow()

    [first] = claim_due(db, "w1", now=start)
    assert attempt_delivery(db, first, allow_private=True, schedule=SCHEDULE, now=start) == (
        "pending"
    )
    delivery = delivery_of(db, event_id)
    # schedule[1] = 1 s, ±10 % jitter
    assert start + timedelta(seconds=0.9) <= delivery.next_attempt_at
    assert delivery.next_attempt_at <= start + timedelta(seconds=1.1)
    assert claim_due(db, "w1", now=start + timedelta(seconds=0.85)) == []

    later = start + timedelta(seconds=1.2)
    [second] = claim_due(db, "w1", now=later)
    assert attempt_delivery(db, second, allow_private=True, schedule=SCHEDULE, now=later) == (
        "delivered"
    )

    assert [r.headers["webhook-id"] for r in receiver.received] == [event_id, event_id]
    attempts = attempts_of(db, delivery.id)
    assert [(a.number, a.status_code, a.response_excerpt) for a in attempts] == [
        (1, 503, "busy"),
        (2, 200, '{"ok":true}'),
    ]


@pytest.mark.parametrize("code", [409, 410, 422])
def test_409_410_422_reject_the_event_for_good(db, receiver, platform, code):
    receiver.script(Reply(code, b'{"error":{"code":"registration_closed"}}'))
    event_id = add_event(db, add_checkout(db, platform.merchant_id, receiver.url()))

    [claim] = claim_due(db, "w1")
    assert attempt_delivery(db, claim, allow_private=True, schedule=SCHEDULE) == "rejected"

    assert claim_due(db, "w1", now=utcnow() + timedelta(days=7)) == []
    assert len(receiver.received) == 1
    delivery = delivery_of(db, event_id)
    assert (delivery.status, delivery.last_status_code, delivery.lease_owner) == (
        "rejected", code, None,
    )  # fmt: skip
    [attempt] = attempts_of(db, delivery.id)
    assert attempt.response_excerpt == '{"error":{"code":"registration_closed"}}'


NOT_ERROR_BODIES = {
    "proxy-html-409": (409, b"<html><body><h1>409 Conflict (proxy)</h1></body></html>"),
    "empty-422": (422, b""),
    "json-without-error-410": (410, b'{"message":"gone"}'),
    "error-not-an-object-409": (409, b'{"error":"registration_closed"}'),
    "code-not-a-string-422": (422, b'{"error":{"code":42}}'),
    "nested-too-deep-409": (409, b"[" * 2048),  # deeper than the JSON parser goes
}


@pytest.mark.parametrize(("code", "body"), NOT_ERROR_BODIES.values(), ids=NOT_ERROR_BODIES.keys())
def test_409_410_422_without_an_error_body_are_retried_and_refund_nothing(
    db, receiver, platform, code, body
):
    """CONTRACT §8 rejects only "with an error body": the same status from a proxy or an
    empty answer may not be the platform's decision, and a paid ticket is not refunded on it."""
    receiver.script(Reply(code, body), Reply(200))
    checkout_id = add_checkout(db, platform.merchant_id, receiver.url())
    event_id = add_paid_event(db, checkout_id)
    start = utcnow()

    [claim] = claim_due(db, "w1", now=start)
    assert attempt_delivery(db, claim, allow_private=True, schedule=SCHEDULE, now=start) == (
        "pending"
    )
    delivery = delivery_of(db, event_id)
    assert (delivery.status, delivery.last_status_code) == ("pending", code)
    assert delivery.next_attempt_at > start  # on the schedule, like a 503
    assert refunds_of(db, checkout_id) == []

    later = start + timedelta(seconds=1.2)
    [again] = claim_due(db, "w1", now=later)
    assert attempt_delivery(db, again, allow_private=True, schedule=SCHEDULE, now=later) == (
        "delivered"
    )
    assert [r.headers["webhook-id"] for r in receiver.received] == [event_id, event_id]
    assert refunds_of(db, checkout_id) == []


@pytest.mark.parametrize("code", [409, 410, 422])
def test_a_paid_event_rejected_with_an_error_body_starts_a_refund(db, receiver, platform, code):
    receiver.script(Reply(code, b'{"error":{"code":"registration_closed","message":"Sold out."}}'))
    checkout_id = add_checkout(db, platform.merchant_id, receiver.url())
    event_id = add_paid_event(db, checkout_id)

    [claim] = claim_due(db, "w1")
    assert attempt_delivery(db, claim, allow_private=True, schedule=SCHEDULE) == "rejected"

    assert delivery_of(db, event_id).status == "rejected"
    assert refunds_of(db, checkout_id) == [("requested", "platform_rejected:registration_closed")]


def test_a_rejection_whose_body_runs_past_the_excerpt_still_refunds(db, receiver, platform):
    """A platform may explain at length (a long message, large details): the 409 is still a
    rejection, its refund starts, and only the first 2 KiB of the answer are stored."""
    details = {"seats": [f"seat-{n}" for n in range(800)]}  # about 9 KiB
    body = json.dumps({"error": {"code": "registration_closed", "details": details}}).encode()
    assert EXCERPT_BYTES < len(body) < REJECTION_BYTES
    receiver.script(Reply(409, body))
    checkout_id = add_checkout(db, platform.merchant_id, receiver.url())
    event_id = add_paid_event(db, checkout_id)

    [claim] = claim_due(db, "w1")
    assert attempt_delivery(db, claim, allow_private=True, schedule=SCHEDULE) == "rejected"

    assert refunds_of(db, checkout_id) == [("requested", "platform_rejected:registration_closed")]
    [attempt] = attempts_of(db, delivery_of(db, event_id).id)
    assert attempt.response_excerpt == body[:EXCERPT_BYTES].decode()


def test_a_409_longer_than_what_is_read_is_not_a_rejection(db, receiver, platform):
    """Past REJECTION_BYTES the body is not read to its end, so it cannot parse: retried."""
    padding = "x" * REJECTION_BYTES
    body = json.dumps({"error": {"code": "registration_closed", "message": padding}}).encode()
    receiver.script(Reply(409, body))
    checkout_id = add_checkout(db, platform.merchant_id, receiver.url())
    add_paid_event(db, checkout_id)
    [claim] = claim_due(db, "w1")
    assert attempt_delivery(db, claim, allow_private=True, schedule=SCHEDULE) == "pending"
    assert refunds_of(db, checkout_id) == []


def test_a_delivery_is_dead_when_the_schedule_is_used_up(db, receiver, platform):
    receiver.default = Reply(500, b"oops")
    event_id = add_event(db, add_checkout(db, platform.merchant_id, receiver.url()))
    now = utcnow()
    outcomes = []
    for _ in SCHEDULE:
        [claim] = claim_due(db, "w1", now=now)
        outcomes.append(attempt_delivery(db, claim, allow_private=True, schedule=SCHEDULE, now=now))
        now += timedelta(seconds=10)

    assert outcomes == ["pending", "pending", "dead"]
    assert claim_due(db, "w1", now=now + timedelta(days=7)) == []
    delivery = delivery_of(db, event_id)
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("dead", 3, 500)
    assert [a.number for a in attempts_of(db, delivery.id)] == [1, 2, 3]


def test_a_connection_error_is_recorded_and_retried(db, platform):
    # Nothing listens on this port (it was just freed).
    from tests.e2e.processes import free_port

    event_id = add_event(
        db, add_checkout(db, platform.merchant_id, f"http://127.0.0.1:{free_port()}/hooks")
    )
    [claim] = claim_due(db, "w1")
    assert attempt_delivery(db, claim, allow_private=True, schedule=SCHEDULE) == "pending"
    delivery = delivery_of(db, event_id)
    assert (delivery.last_status_code, delivery.last_error) == (None, "connection failed")


def test_a_checkouts_deliveries_go_out_in_the_order_their_events_were_written(
    db, receiver, platform
):
    first_checkout = add_checkout(db, platform.merchant_id, receiver.url())
    other_checkout = add_checkout(db, platform.merchant_id, receiver.url())
    earlier = add_event(db, first_checkout)
    later = add_event(db, first_checkout)
    other = add_event(db, other_checkout)

    claims = claim_due(db, "w1", limit=10)
    assert sorted(c.event_id for c in claims) == sorted([earlier, other])
    assert later not in {c.event_id for c in claims}
    # Still blocked while the earlier one is in flight, even for another worker.
    assert claim_due(db, "w2", limit=10, now=utcnow() + timedelta(seconds=5)) == []

    receiver.default = Reply(503)
    for claim in claims:
        attempt_delivery(db, claim, allow_private=True, schedule=SCHEDULE)
    # A failed earlier event still holds the later one back while it is retried ...
    retry_at = utcnow() + timedelta(seconds=2)
    assert sorted(c.event_id for c in claim_due(db, "w1", limit=10, now=retry_at)) == sorted(
        [earlier, other]
    )


def test_a_dead_or_delivered_earlier_event_releases_the_later_one(db, receiver, platform):
    checkout_id = add_checkout(db, platform.merchant_id, receiver.url())
    earlier = add_event(db, checkout_id)
    later = add_event(db, checkout_id)
    [claim] = claim_due(db, "w1", limit=10)
    assert claim.event_id == earlier
    attempt_delivery(db, claim, allow_private=True, schedule=SCHEDULE)
    assert [c.event_id for c in claim_due(db, "w1", limit=10)] == [later]


def test_an_earlier_event_that_keeps_failing_stops_holding_the_later_one_back(
    db, receiver, platform
):
    """A platform whose handler fails one type (an `expired` answered 500) still gets the
    checkout's (late) `paid` after the earlier event's first retry, not after its last."""
    assert dispatcher.IN_ORDER_ATTEMPTS == 2
    checkout_id = add_checkout(db, platform.merchant_id, receiver.url())
    failing = add_event(db, checkout_id)  # ticket_payment.expired
    paid = add_paid_event(db, checkout_id)
    receiver.default = Reply(500, b"handler crashed")
    now = utcnow()
    for attempt in (1, 2):
        [claim] = claim_due(db, "w1", limit=10, now=now)
        assert claim.event_id == failing, f"attempt {attempt}: the later one went first"
        attempt_delivery(db, claim, allow_private=True, schedule=SCHEDULE, now=now)
        now += timedelta(seconds=3)  # past the retry (SCHEDULE: 1 s, then 2 s, +-10 %)
    # Failed twice and waiting for its next retry: the later one goes ahead of it.
    receiver.default = Reply(200)
    [claim] = claim_due(db, "w1", limit=10, now=now - timedelta(seconds=2.5))
    assert claim.event_id == paid
    assert attempt_delivery(db, claim, allow_private=True, schedule=SCHEDULE) == "delivered"
    assert delivery_of(db, failing).status == "pending"  # still retried on its schedule
    assert delivery_of(db, failing).attempts == 2


def test_an_expired_lease_is_claimed_again_by_another_worker(db, receiver, platform):
    """A worker killed mid-attempt loses nothing: its lease runs out, another worker sends
    the same event (same webhook-id), and the dead worker's late result is not recorded."""
    event_id = add_event(db, add_checkout(db, platform.merchant_id, receiver.url()))
    start = utcnow()
    [stale] = claim_due(db, "w1", lease_seconds=30, now=start)

    assert claim_due(db, "w2", now=start + timedelta(seconds=29)) == []
    [taken] = claim_due(db, "w2", now=start + timedelta(seconds=31))
    assert (taken.delivery_id, taken.event_id, taken.worker_id) == (
        stale.delivery_id, event_id, "w2",
    )  # fmt: skip

    late = AttemptResult(started_at=start, duration_ms=5, status_code=503)
    assert record_result(db, stale, late, SCHEDULE) is None  # no longer its lease
    assert attempt_delivery(db, taken, allow_private=True, schedule=SCHEDULE) == "delivered"

    [attempt] = attempts_of(db, taken.delivery_id)
    assert (attempt.worker_id, attempt.status_code) == ("w2", 200)
    assert [r.headers["webhook-id"] for r in receiver.received] == [event_id]


def _claim_race(db, workers: int) -> list[int]:
    results = race(workers, lambda i: claim_due(db, f"w{i}", limit=5))
    return [claim.delivery_id for claims in results for claim in claims]


def _unguarded(now: datetime, limit: int) -> Select[int]:
    """The due query without its guard: no lease condition, no FOR UPDATE SKIP LOCKED."""
    return (
        select(Delivery.id)
        .where(Delivery.status == "pending", Delivery.next_attempt_at <= now)
        .order_by(Delivery.next_attempt_at, Delivery.seq)
        .limit(limit)
    )


def test_concurrent_workers_never_claim_the_same_delivery(db, receiver, platform, monkeypatch):
    for _ in range(24):
        add_event(db, add_checkout(db, platform.merchant_id, receiver.url()))

    claimed = _claim_race(db, 6)
    assert len(claimed) == len(set(claimed))
    assert len(claimed) == 24  # 6 workers x 5 slots: all of them, each once

    # Control: without the guard the same race hands deliveries to several workers.
    with db.transaction() as session:
        session.execute(update(Delivery).values(lease_owner=None, lease_expires_at=None))
    monkeypatch.setattr(dispatcher, "due_deliveries", _unguarded)
    claimed = _claim_race(db, 6)
    assert len(claimed) > len(set(claimed))
