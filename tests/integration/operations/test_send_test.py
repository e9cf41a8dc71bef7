"""send_test: a signed sample of each event type, through the worker's sender and checks."""

from __future__ import annotations

import json

import pytest

from payment_service.callbacks.operations import SendTestRefused, send_test
from shared_contracts.events import REQUIRED_DATA_FIELDS, EventType
from shared_contracts.signing import verify
from tests.integration.callbacks.conftest import Reply


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
