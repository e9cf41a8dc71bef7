"""The expiry sweep's callbacks: no request caused them, so each carries a request id of its
own (CONTRACT §4, §8), the same one the sweep logs for that checkout."""

from __future__ import annotations

import json
import re
from datetime import timedelta

from structlog.testing import capture_logs

from payment_service.callbacks.dispatcher import attempt_delivery, claim_due
from payment_service.checkouts.expiry import expire_due
from payment_service.db import utcnow
from tests.integration.callbacks.conftest import add_checkout

SCHEDULE = (0, 1, 2)
# The service's generated request ids: payment_service.logging.new_request_id.
GENERATED_REQUEST_ID = re.compile(r"req_[A-Za-z0-9_-]{16}")


def test_expired_callbacks_carry_the_request_id_the_sweep_logged(db, receiver, platform):
    checkouts = {add_checkout(db, platform.merchant_id, receiver.url()) for _ in range(2)}

    with capture_logs() as logs:
        expired = expire_due(db, now=utcnow() + timedelta(hours=1))
    assert {e.checkout_id for e in expired} == checkouts
    claims = claim_due(db, "w1", limit=10)
    outcomes = [attempt_delivery(db, c, allow_private=True, schedule=SCHEDULE) for c in claims]
    assert outcomes == ["delivered", "delivered"]

    sent = {}
    for received in receiver.wait_for(2):
        body = json.loads(received.body)
        assert body["type"] == "ticket_payment.expired"
        sent[body["data"]["checkoutId"]] = received.headers.get("x-request-id")
    assert set(sent) == checkouts
    for request_id in sent.values():
        assert request_id is not None and GENERATED_REQUEST_ID.fullmatch(request_id), sent
    assert len(set(sent.values())) == 2  # one per expiry, not one per sweep
    logged = {
        line["checkoutId"]: line.get("requestId")
        for line in logs
        if line["event"] == "checkout.expired"
    }
    assert logged == sent
    assert {e.checkout_id: e.request_id for e in expired} == sent
