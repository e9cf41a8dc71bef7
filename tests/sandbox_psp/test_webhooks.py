"""Webhooks to a real local HTTP receiver: signatures, copies, delays, holds, order, retries."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

from flask.testing import FlaskClient

from payment_service.sandbox_psp import close_sandbox_app, create_sandbox_app
from payment_service.sandbox_psp.models import WebhookEvent
from payment_service.sandbox_psp.signature import HEADER, verify_webhook
from payment_service.sandbox_psp.store import Store
from payment_service.sandbox_psp.webhooks import Delivery, WebhookSender
from tests.sandbox_psp.conftest import WEBHOOK_SECRET, Api, Receiver, make_config


def pay(api: Api, browser: FlaskClient, receiver: Receiver, outcome: str = "succeeded") -> str:
    session = api.create_session(webhookUrl=receiver.url)
    assert browser.post(f"/pay/{session['id']}", data={"outcome": outcome}).status_code == 303
    return session["id"]  # type: ignore[no-any-return]


def test_a_payment_sends_a_signed_event(api: Api, browser: FlaskClient, receiver: Receiver) -> None:
    session_id = pay(api, browser, receiver)
    [received] = receiver.wait_for(1)
    assert received.path == "/hooks/sandbox"
    assert received.headers["Content-Type"] == "application/json"
    verify_webhook(WEBHOOK_SECRET, received.headers[HEADER], received.body)
    event = received.event
    assert set(event) == {"id", "type", "created", "data"}
    assert event["id"].startswith("sbe_") and event["type"] == "payment.succeeded"
    assert abs(event["created"] - time.time()) < 30
    payment = event["data"]["object"]
    assert payment["object"] == "payment" and payment["sessionId"] == session_id
    assert payment == api.get(f"/api/payments/{payment['id']}").json


def test_a_forged_or_altered_event_does_not_verify(
    api: Api, browser: FlaskClient, receiver: Receiver
) -> None:
    pay(api, browser, receiver)
    [received] = receiver.wait_for(1)
    altered = received.body.replace(b"succeeded", b"declined")
    for secret, body in (("sbx_whsec_dev", received.body), (WEBHOOK_SECRET, altered)):
        try:
            verify_webhook(secret, received.headers[HEADER], body)
        except ValueError:
            continue
        raise AssertionError("a bad signature verified")


def test_each_kind_of_event(api: Api, browser: FlaskClient, receiver: Receiver) -> None:
    pay(api, browser, receiver, outcome="declined")
    paid_session = pay(api, browser, receiver)
    payment_id = api.get(f"/api/sessions/{paid_session}").json["paymentId"]
    refund = api.post(f"/api/payments/{payment_id}/refunds", {"amount": 500}).json
    expiring = api.create_session(webhookUrl=receiver.url)
    api.post(f"/api/sessions/{expiring['id']}/expire")
    api.post(f"/api/sessions/{expiring['id']}/expire")  # already expired: no second event

    received = receiver.wait_for(4)
    by_type = {r.event["type"]: r.event["data"]["object"] for r in receiver.settle()}
    assert len(received) == 4 and set(by_type) == {
        "payment.declined",
        "payment.succeeded",
        "refund.succeeded",
        "session.expired",
    }
    assert by_type["payment.declined"]["declineCode"] == "card_declined"
    assert by_type["refund.succeeded"] == refund
    assert by_type["session.expired"]["status"] == "expired"
    assert by_type["session.expired"]["id"] == expiring["id"]


def test_copies_are_separate_posts_of_one_event(
    api: Api, browser: FlaskClient, receiver: Receiver
) -> None:
    api.configure(webhookCopies=3)
    pay(api, browser, receiver)
    receiver.wait_for(3)
    received = receiver.settle()
    assert len(received) == 3
    assert len({r.event["id"] for r in received}) == 1
    for copy in received:
        verify_webhook(WEBHOOK_SECRET, copy.headers[HEADER], copy.body)
    [event] = api.get("/api/test/events").json["data"]
    assert (event["status"], event["copies"], event["deliveredCopies"]) == ("delivered", 3, 3)


def test_a_delay_holds_each_event_back(api: Api, browser: FlaskClient, receiver: Receiver) -> None:
    api.configure(webhookDelayMs=600)
    started = time.monotonic()
    pay(api, browser, receiver)
    receiver.wait_for(1)
    assert time.monotonic() - started >= 0.6


def test_held_events_are_released_in_reverse(
    api: Api, browser: FlaskClient, receiver: Receiver
) -> None:
    api.configure(holdWebhooks=True)
    sessions = [pay(api, browser, receiver) for _ in range(3)]
    assert receiver.settle(0.3) == []
    assert api.get("/api/test/config").json["heldWebhooks"] == 3
    assert {e["status"] for e in api.get("/api/test/events").json["data"]} == {"held"}

    released = api.post("/api/test/release-webhooks", {"order": "reverse"}).json
    received = receiver.wait_for(3)
    assert [r.event["data"]["object"]["sessionId"] for r in received] == sessions[::-1]
    assert released == {"order": "reverse", "released": [r.event["id"] for r in received]}
    assert api.post("/api/test/release-webhooks").json["released"] == []
    assert api.post("/api/test/release-webhooks", {"order": "random"}).status_code == 422


def test_held_events_are_released_fifo_by_another_process(
    api: Api, browser: FlaskClient, receiver: Receiver, tmp_path: Path
) -> None:
    """Two apps on one database stand for two gunicorn workers: switches and holds are shared."""
    api.configure(holdWebhooks=True)
    sessions = [pay(api, browser, receiver) for _ in range(2)]
    other = create_sandbox_app(make_config(tmp_path))
    try:
        other_api = Api(other.test_client())
        assert other_api.get("/api/test/config").json["holdWebhooks"] is True
        other_api.post("/api/test/release-webhooks", {"order": "fifo"})
        received = receiver.wait_for(2)
        assert [r.event["data"]["object"]["sessionId"] for r in received] == sessions
    finally:
        close_sandbox_app(other)


def test_failed_posts_are_retried_with_the_same_event_id(
    api: Api, browser: FlaskClient, receiver: Receiver
) -> None:
    receiver.statuses = [500, 302]
    pay(api, browser, receiver)
    received = receiver.wait_for(3)
    assert len({r.event["id"] for r in received}) == 1
    assert receiver.settle(0.3) == received
    [event] = api.get("/api/test/events").json["data"]
    assert (event["status"], event["attempts"]) == ("delivered", 3)


def test_the_sender_gives_up_after_five_attempts(receiver: Receiver, tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'sender.db'}")
    store.create_all()
    with store.transaction() as db:
        db.add(
            WebhookEvent(
                id="sbe_1", type="t", url=receiver.url, body="{}", status="pending", copies=1,
                attempts=0, delivered_copies=0, created_at=datetime.now(UTC),
            )
        )  # fmt: skip
    sender = WebhookSender("secret", store, backoff=(0.01, 0.01, 0.01, 0.01))
    receiver.statuses = [503] * 10
    try:
        sender.enqueue(Delivery("sbe_1", receiver.url, b"{}", 1))
        receiver.wait_for(5)
        assert len(receiver.settle(0.3)) == 5
        deadline = time.monotonic() + 5
        while (event := _event(store, "sbe_1")).status == "pending":
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert (event.status, event.attempts, event.last_error) == ("failed", 5, "HTTP 503")
    finally:
        sender.close()
        store.dispose()


def test_close_does_not_wait_for_a_pending_retry(receiver: Receiver, tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'sender.db'}")
    store.create_all()
    sender = WebhookSender("secret", store, backoff=(30.0,))
    receiver.statuses = [500]
    try:
        sender.enqueue(Delivery("sbe_x", receiver.url, b"{}", 1))
        receiver.wait_for(1)
        started = time.monotonic()
        sender.close()
        assert time.monotonic() - started < 2
    finally:
        store.dispose()


def _event(store: Store, event_id: str) -> WebhookEvent:
    with store.transaction() as db:
        event = db.query(WebhookEvent).filter_by(id=event_id).one()
        db.expunge(event)
        return event
