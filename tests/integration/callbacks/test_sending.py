"""One attempt over the wire: Standard Webhooks signatures, redirects, timeouts, SSRF, rotation."""

from __future__ import annotations

import gzip
import json
import socket
from datetime import timedelta

import pytest
from standardwebhooks.webhooks import Webhook

from payment_service.callbacks.dispatcher import attempt_delivery, claim_due
from payment_service.db import utcnow
from payment_service.merchants.services import rotate_secret
from tests.integration.callbacks.conftest import Reply, add_checkout, add_event
from tests.integration.callbacks.helpers import attempts_of, delivery_of

SCHEDULE = (0, 1, 2)


def test_a_delivered_callback_verifies_with_the_standardwebhooks_library(db, receiver, platform):
    checkout_id = add_checkout(db, platform.merchant_id, receiver.url("/hooks?src=pay"))
    event_id = add_event(db, checkout_id, request_id="req_abc")

    [claim] = claim_due(db, "w1")
    assert attempt_delivery(db, claim, allow_private=True, schedule=SCHEDULE) == "delivered"

    [got] = receiver.received
    assert got.path == "/hooks?src=pay"
    payload = Webhook(platform.signing_secret).verify(got.body, got.headers)
    assert payload["type"] == "ticket_payment.expired"
    assert payload["data"]["checkoutId"] == checkout_id
    assert got.headers["webhook-id"] == event_id
    assert got.headers["x-request-id"] == "req_abc"
    assert got.headers["content-type"] == "application/json"
    delivery = delivery_of(db, event_id)
    assert (delivery.status, delivery.attempts, delivery.lease_owner) == ("delivered", 1, None)
    assert delivery.delivered_at is not None
    [attempt] = attempts_of(db, delivery.id)
    assert (attempt.number, attempt.status_code, attempt.error) == (1, 200, None)
    assert attempt.response_excerpt == '{"ok":true}' and attempt.worker_id == "w1"


def test_only_the_first_2_kib_of_an_answer_is_kept(db, receiver, platform):
    receiver.script(Reply(503, b"x" * 10_000))
    event_id = add_event(db, add_checkout(db, platform.merchant_id, receiver.url()))
    [claim] = claim_due(db, "w1")
    attempt_delivery(db, claim, allow_private=True, schedule=SCHEDULE)
    [attempt] = attempts_of(db, delivery_of(db, event_id).id)
    assert attempt.response_excerpt == "x" * 2048


@pytest.mark.parametrize(
    ("status", "body", "outcome"),
    [
        (200, gzip.compress(b'{"ok":true}'), "delivered"),  # compressed though not asked to
        (200, b'{"ok":true}\x00\x01\ttail\r\n', "delivered"),
        (503, '{"error":{"code":"busy"}}'.encode("utf-16"), "pending"),  # retried, but counted
    ],
    ids=["gzip", "text-with-controls", "utf-16"],
)
def test_an_answer_with_nul_bytes_is_recorded_without_them(
    db, receiver, platform, status, body, outcome
):
    """PostgreSQL refuses NUL in text: such an excerpt would roll the record back, and the
    callback would be sent again and again, never counted."""
    assert b"\x00" in body
    receiver.script(Reply(status, body))
    event_id = add_event(db, add_checkout(db, platform.merchant_id, receiver.url()))

    [claim] = claim_due(db, "w1")
    assert attempt_delivery(db, claim, allow_private=True, schedule=SCHEDULE) == outcome

    delivery = delivery_of(db, event_id)
    assert (delivery.status, delivery.attempts, delivery.lease_owner) == (outcome, 1, None)
    [attempt] = attempts_of(db, delivery.id)
    assert attempt.status_code == status and attempt.response_excerpt
    assert "\x00" not in attempt.response_excerpt
    if body.startswith(b'{"ok"'):  # text stays readable: controls replaced, tab, CR, LF kept
        assert attempt.response_excerpt == '{"ok":true}\ufffd\ufffd\ttail\r\n'


def test_a_redirect_is_not_followed_and_counts_as_a_failure(db, receiver, platform):
    receiver.script(Reply(302, b"", {"Location": receiver.url("/elsewhere")}))
    event_id = add_event(db, add_checkout(db, platform.merchant_id, receiver.url()))

    [claim] = claim_due(db, "w1")
    assert attempt_delivery(db, claim, allow_private=True, schedule=SCHEDULE) == "pending"

    assert [r.path for r in receiver.received] == ["/hooks"]
    delivery = delivery_of(db, event_id)
    assert (delivery.attempts, delivery.last_status_code) == (1, 302)


def test_a_receiver_slower_than_the_timeout_is_a_failure_to_retry(db, receiver, platform):
    receiver.script(Reply(200, delay=1.0))
    event_id = add_event(db, add_checkout(db, platform.merchant_id, receiver.url()))

    [claim] = claim_due(db, "w1")
    status = attempt_delivery(db, claim, allow_private=True, schedule=SCHEDULE, timeout=0.2)

    assert status == "pending"
    [attempt] = attempts_of(db, delivery_of(db, event_id).id)
    assert attempt.status_code is None and attempt.error == "timed out after 0.2 s"
    assert attempt.duration_ms < 900


def test_the_address_connected_to_is_checked_again_at_delivery(db, receiver, platform):
    """DNS changed after the checkout was created: the name now points at loopback."""
    checkout_id = add_checkout(
        db, platform.merchant_id, f"http://hooks.platform.example:{receiver.port}/hooks"
    )
    event_id = add_event(db, checkout_id)
    lookups: list[str] = []

    def rebinding_dns(host: str, port: int, **_: object) -> list[tuple[object, ...]]:
        lookups.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

    [claim] = claim_due(db, "w1")
    status = attempt_delivery(
        db, claim, allow_private=False, schedule=SCHEDULE, resolve=rebinding_dns
    )

    assert status == "pending"  # retried: DNS may be fixed by the next attempt
    assert lookups == ["hooks.platform.example"]
    assert receiver.received == []  # refused before connecting
    [attempt] = attempts_of(db, delivery_of(db, event_id).id)
    assert attempt.status_code is None
    assert attempt.error == "refused: callback host resolves to a private address"

    # Control: the same name and resolver with private callbacks allowed reaches the receiver,
    # through the checked address, with the name kept in the Host header.
    [again] = claim_due(db, "w1", now=utcnow() + timedelta(seconds=2))
    assert (
        attempt_delivery(db, again, allow_private=True, schedule=SCHEDULE, resolve=rebinding_dns)
        == "delivered"
    )
    [got] = receiver.received
    assert got.headers["host"] == f"hooks.platform.example:{receiver.port}"
    assert got.headers["webhook-id"] == event_id


def test_during_a_rotation_each_active_secret_signs_and_either_verifies(db, receiver, platform):
    new_secret, active = rotate_secret(db, platform.merchant_id)
    assert len(active) == 2
    add_event(db, add_checkout(db, platform.merchant_id, receiver.url()))

    [claim] = claim_due(db, "w1")
    attempt_delivery(db, claim, allow_private=True, schedule=SCHEDULE)

    [got] = receiver.received
    assert len(got.headers["webhook-signature"].split(" ")) == 2
    for secret in (platform.signing_secret, new_secret):
        assert Webhook(secret).verify(got.body, got.headers)["type"] == "ticket_payment.expired"
    assert json.loads(got.body)["type"] == "ticket_payment.expired"


def test_no_secret_or_body_in_a_claims_repr(db, receiver, platform):
    add_event(db, add_checkout(db, platform.merchant_id, receiver.url()))
    [claim] = claim_due(db, "w1")
    assert platform.signing_secret not in repr(claim)
    assert "ticket_payment" not in repr(claim.outgoing)


def test_a_delivered_callback_verifies_with_platform_client(db, receiver, platform):
    """What a platform embedding platform_client sees: a verified, typed event."""
    from platform_client.callbacks import TicketPaymentExpired, verify_callback

    checkout_id = add_checkout(db, platform.merchant_id, receiver.url("/hooks"))
    event_id = add_event(db, checkout_id, request_id="req_pc")
    [claim] = claim_due(db, "w1")
    assert attempt_delivery(db, claim, allow_private=True, schedule=SCHEDULE) == "delivered"
    [got] = receiver.received
    event = verify_callback(got.body, got.headers, [platform.signing_secret])
    assert isinstance(event, TicketPaymentExpired)
    assert (event.event_id, event.checkout_id) == (event_id, checkout_id)
