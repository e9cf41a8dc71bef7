"""GET /v1/events and POST /v1/events/{eventId}/redeliver: shape, order, tenant isolation and
redelivery semantics, on both databases."""

from __future__ import annotations

from datetime import timedelta

import pytest
from openapi_schema_validator import OAS30Validator, oas30_format_checker
from sqlalchemy import select

from payment_service.callbacks.models import DeliveryAttempt
from payment_service.db import utcnow
from shared_contracts.events import EventType
from tests.factories import make_merchant
from tests.integration.callbacks.conftest import Reply, add_checkout, add_event
from tests.integration.callbacks.helpers import delivery_of
from tests.integration.operations.helpers import deliver_due, force_status

DELIVERY_KEYS = {
    "status", "attempts", "lastStatusCode", "lastError", "nextAttemptAt", "deliveredAt",
    "recentAttempts",
}  # fmt: skip


def events_of(client, merchant, checkout_id):
    response = client.get(f"/v1/events?checkoutId={checkout_id}", headers=merchant.auth)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["data"]


def redeliver(client, merchant, event_id):
    return client.post(f"/v1/events/{event_id}/redeliver", headers=merchant.auth)


def test_events_of_a_checkout_in_write_order_with_their_delivery(client, db, receiver, platform):
    checkout_id = add_checkout(db, platform.merchant_id, receiver.url())
    first = add_event(db, checkout_id, EventType.EXPIRED)
    second = add_event(db, checkout_id, EventType.CANCELED)
    receiver.script(Reply(503, b"busy"))
    assert deliver_due(db) == ["pending"]  # the second waits for the first (write order)

    events = events_of(client, platform, checkout_id)

    assert [(e["eventId"], e["type"]) for e in events] == [
        (first, "ticket_payment.expired"),
        (second, "ticket_payment.canceled"),
    ]
    retried, waiting = events
    assert set(retried) == {"eventId", "type", "createdAt", "data", "delivery"}
    assert retried["data"]["checkoutId"] == checkout_id
    assert retried["data"]["eventId"] == "evt_42"  # the platform's event, not the webhook-id
    assert set(retried["delivery"]) == DELIVERY_KEYS
    assert retried["delivery"]["status"] == "pending"
    assert retried["delivery"]["attempts"] == 1
    assert retried["delivery"]["lastStatusCode"] == 503
    assert retried["delivery"]["nextAttemptAt"] is not None
    [attempt] = retried["delivery"]["recentAttempts"]
    assert attempt["number"] == 1 and attempt["statusCode"] == 503 and attempt["error"] is None
    assert attempt["durationMs"] >= 0 and attempt["startedAt"]
    assert waiting["delivery"]["attempts"] == 0 and waiting["delivery"]["recentAttempts"] == []


def test_the_answer_matches_the_openapi_document(client, db, receiver, platform):
    checkout_id = add_checkout(db, platform.merchant_id, receiver.url())
    add_event(db, checkout_id, EventType.EXPIRED)
    receiver.script(Reply(500))
    deliver_due(db, schedule=(0,))  # dead after one attempt: every field is set
    spec = client.get("/openapi.json").get_json()

    def check(path: str, method: str, status: str, body: object) -> None:
        schema = spec["paths"][path][method]["responses"][status]["content"]["application/json"]
        validator = OAS30Validator(
            {**schema["schema"], "components": spec["components"]},
            format_checker=oas30_format_checker,
        )
        assert [e.message for e in validator.iter_errors(body)] == []

    listed = client.get(f"/v1/events?checkoutId={checkout_id}", headers=platform.auth)
    check("/v1/events", "get", "200", listed.get_json())
    event_id = listed.get_json()["data"][0]["eventId"]
    redelivered = redeliver(client, platform, event_id)
    check("/v1/events/{event_id}/redeliver", "post", "202", redelivered.get_json())


def test_only_the_last_ten_attempts_are_listed(client, db, receiver, platform):
    checkout_id = add_checkout(db, platform.merchant_id, receiver.url())
    event_id = add_event(db, checkout_id)
    delivery = delivery_of(db, event_id)
    start = utcnow()
    with db.transaction() as session:
        for number in range(1, 13):
            session.add(
                DeliveryAttempt(
                    delivery_id=delivery.id, number=number, worker_id="w",
                    started_at=start + timedelta(seconds=number), duration_ms=number,
                    status_code=503,
                )
            )  # fmt: skip
    [event] = events_of(client, platform, checkout_id)
    assert [a["number"] for a in event["delivery"]["recentAttempts"]] == list(range(3, 13))


def test_another_merchants_checkout_has_no_events_and_its_events_are_not_found(
    client, db, receiver, platform
):
    checkout_id = add_checkout(db, platform.merchant_id, receiver.url())
    event_id = add_event(db, checkout_id)
    force_status(db, event_id, "dead")
    other = make_merchant(db, name="Another platform")

    assert events_of(client, other, checkout_id) == []
    response = redeliver(client, other, event_id)
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"
    assert delivery_of(db, event_id).status == "dead"  # untouched
    assert len(events_of(client, platform, checkout_id)) == 1


def test_unknown_checkout_is_an_empty_list_and_unknown_event_404(client, merchant):
    assert events_of(client, merchant, "chk_nothing") == []
    response = redeliver(client, merchant, "evt_nothing")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("query", ["", "?checkoutId="])
def test_checkout_id_is_required(client, merchant, query):
    response = client.get(f"/v1/events{query}", headers=merchant.auth)
    assert response.status_code == 422
    assert list(response.get_json()["error"]["details"]) == ["checkoutId"]


def test_both_need_the_api_key(client):
    assert client.get("/v1/events?checkoutId=chk_1").status_code == 401
    assert client.post("/v1/events/evt_1/redeliver").status_code == 401


def test_a_dead_event_is_redelivered_with_the_same_webhook_id_and_its_attempts_kept(
    client, db, receiver, platform
):
    checkout_id = add_checkout(db, platform.merchant_id, receiver.url())
    event_id = add_event(db, checkout_id)
    receiver.script(Reply(503))
    assert deliver_due(db, schedule=(0,)) == ["dead"]
    assert deliver_due(db, schedule=(0,)) == []  # dead: never attempted again by itself

    before = utcnow()
    response = redeliver(client, platform, event_id)

    assert response.status_code == 202
    event = response.get_json()
    assert event["eventId"] == event_id
    delivery = event["delivery"]
    assert delivery["status"] == "pending" and delivery["attempts"] == 1
    assert delivery["lastStatusCode"] == 503  # the history stays
    stored = delivery_of(db, event_id)
    assert before - timedelta(seconds=1) <= stored.next_attempt_at <= utcnow()
    assert stored.lease_owner is None

    assert deliver_due(db, schedule=(0,)) == ["delivered"]
    assert [r.headers["webhook-id"] for r in receiver.received] == [event_id, event_id]
    [listed] = events_of(client, platform, checkout_id)
    assert listed["delivery"]["status"] == "delivered"
    assert [a["statusCode"] for a in listed["delivery"]["recentAttempts"]] == [503, 200]


def test_a_dead_event_that_fails_again_is_dead_again_after_one_attempt(
    client, db, receiver, platform
):
    event_id = add_event(db, add_checkout(db, platform.merchant_id, receiver.url()))
    receiver.script(Reply(503), Reply(503), Reply(503))
    deliver_due(db, schedule=(0, 0))
    deliver_due(db, schedule=(0, 0))
    assert delivery_of(db, event_id).status == "dead"
    assert redeliver(client, platform, event_id).status_code == 202
    assert deliver_due(db, schedule=(0, 0)) == ["dead"]
    assert delivery_of(db, event_id).attempts == 3


def test_redelivering_a_pending_event_changes_nothing(client, db, receiver, platform):
    event_id = add_event(db, add_checkout(db, platform.merchant_id, receiver.url()))
    receiver.script(Reply(503))
    deliver_due(db)
    before = delivery_of(db, event_id)
    assert before.status == "pending" and before.next_attempt_at > utcnow()

    for _ in range(2):
        response = redeliver(client, platform, event_id)
        assert response.status_code == 202
        assert response.get_json()["delivery"]["status"] == "pending"
    after = delivery_of(db, event_id)
    assert (after.next_attempt_at, after.attempts) == (before.next_attempt_at, 1)


@pytest.mark.parametrize("status", ["delivered", "rejected"])
def test_delivered_and_rejected_events_can_be_redelivered(client, db, receiver, platform, status):
    event_id = add_event(db, add_checkout(db, platform.merchant_id, receiver.url()))
    receiver.script(
        Reply(200) if status == "delivered" else Reply(410, b'{"error":{"code":"gone"}}')
    )
    assert deliver_due(db) == [status]

    response = redeliver(client, platform, event_id)

    assert response.status_code == 202
    assert response.get_json()["delivery"]["status"] == "pending"
    assert response.get_json()["delivery"]["deliveredAt"] is None
    assert deliver_due(db) == ["delivered"]


def test_a_rejected_paid_event_is_never_sent_again(client, db, receiver, platform):
    checkout_id = add_checkout(db, platform.merchant_id, receiver.url())
    event_id = add_paid_event(db, checkout_id)
    force_status(db, event_id, "rejected")  # its refund has started (CONTRACT §8)

    response = redeliver(client, platform, event_id)

    assert response.status_code == 409
    assert response.get_json()["error"]["code"] == "invalid_state"
    assert delivery_of(db, event_id).status == "rejected"


def add_paid_event(db, checkout_id: str) -> str:
    from payment_service.callbacks.outbox import record_event
    from payment_service.checkouts.models import Checkout

    with db.transaction() as session:
        checkout = session.get(Checkout, checkout_id)
        checkout.status = "paid"
        checkout.paid_at = utcnow()
        extra = {"paymentId": "pay_1", "provider": "sandbox", "txId": "tx_1",
                 "paidAt": "2026-11-22T10:03:12Z"}  # fmt: skip
        return record_event(session, checkout, EventType.PAID, extra, request_id=None).id


def test_redeliver_writes_no_new_event(client, db, receiver, platform):
    checkout_id = add_checkout(db, platform.merchant_id, receiver.url())
    event_id = add_event(db, checkout_id)
    force_status(db, event_id, "dead")
    redeliver(client, platform, event_id)
    with db.transaction() as session:
        from payment_service.callbacks.models import CallbackEvent

        ids = session.scalars(select(CallbackEvent.id)).all()
    assert ids == [event_id]
