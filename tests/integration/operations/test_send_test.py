"""send_test: a signed sample of each event type, through the worker's sender and checks."""

from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import select

from payment_service.callbacks.models import CallbackEvent
from payment_service.callbacks.operations import SendTestRefused, sample_body, send_test
from payment_service.db import utcnow
from payment_service.payments.services import apply_payment
from payment_service.providers.base import PaymentStatus, ProviderPayment
from shared_contracts.events import REQUIRED_DATA_FIELDS, EventType
from shared_contracts.signing import verify
from tests.integration.callbacks.conftest import Reply, add_checkout


@pytest.mark.parametrize("event_type", list(EventType))
def test_a_signed_sample_with_every_required_field(db, receiver, platform, event_type):
    sent = send_test(db, platform.merchant_id, receiver.url(), event_type, allow_private=True)

    assert sent.ok and sent.result.status_code == 200
    [received] = receiver.received
    verify(platform.signing_secret, received.headers, received.body)
    assert received.headers["webhook-id"] == sent.event_id
    assert sent.event_id.startswith("evt_test_")
    body = json.loads(received.body)
    assert body["type"] == event_type.value
    assert REQUIRED_DATA_FIELDS[event_type] <= set(body["data"])


def test_an_error_answer_is_reported_not_raised(db, receiver, platform):
    receiver.script(Reply(500, b"boom"))
    sent = send_test(db, platform.merchant_id, receiver.url(), EventType.PAID, allow_private=True)
    assert not sent.ok
    assert (sent.result.status_code, sent.result.response_excerpt) == (500, "boom")


def test_a_url_off_the_allowlist_is_refused_before_sending(db, receiver, platform):
    with pytest.raises(SendTestRefused, match="not one of the allowed origins"):
        send_test(db, platform.merchant_id, "https://elsewhere.example/hooks", EventType.PAID,
                  allow_private=True)  # fmt: skip
    assert receiver.received == []


def test_a_private_address_is_refused_unless_private_callbacks_are_allowed(db, receiver, platform):
    sent = send_test(db, platform.merchant_id, receiver.url(), EventType.PAID, allow_private=False)
    assert not sent.ok and sent.result.error.startswith("refused")
    assert receiver.received == []


def test_an_unknown_merchant_is_refused(db, receiver):
    with pytest.raises(SendTestRefused, match="no merchant"):
        send_test(db, "mer_nobody", receiver.url(), EventType.PAID, allow_private=True)


def test_the_paid_sample_has_the_fields_and_forms_of_a_real_paid_callback(db, platform):
    """A receiver that works with the sample must work with the real thing, and the other way
    round: the same data fields (`late` included), each of the same JSON type, and `paidAt`
    to the second as payments record it."""
    checkout_id = add_checkout(db, platform.merchant_id, "http://127.0.0.1:9/hooks")
    paid = ProviderPayment(
        payment_id="sbp_real", session_id="sbs_real", reference=checkout_id,
        status=PaymentStatus.SUCCEEDED, amount=30000, currency="KRW", tx_id="sbtx_real",
        decline_code=None, occurred_at=utcnow(),
    )  # fmt: skip
    with db.transaction() as session:
        apply_payment(session, "sandbox", paid, max_attempts=3, request_id=None)
    with db.transaction() as session:
        real = session.scalars(
            select(CallbackEvent.payload).where(CallbackEvent.checkout_id == checkout_id)
        ).one()["data"]

    sample = sample_body(EventType.PAID)["data"]

    assert isinstance(sample, dict)
    assert {name: type(value) for name, value in sample.items()} == {
        name: type(value) for name, value in real.items()
    }
    assert sample["late"] is False
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", real["paidAt"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", sample["paidAt"])
