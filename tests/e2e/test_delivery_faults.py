"""Callback delivery under faults, with the service and workers as real processes."""

import signal
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from payment_service.callbacks.models import CallbackEvent, Delivery, DeliveryAttempt
from shared_contracts.signing import verify
from tests.e2e.stack import Stack, Worker
from tests.receivers import serving_receiver

pytestmark = pytest.mark.e2e


@pytest.fixture
def stack(database_url, db, tmp_path):
    running = Stack.start(
        database_url, tmp_path,
        # A short lease, so a dead worker's delivery is taken over within seconds, not a
        # minute; five attempts a second apart, so a platform can be down for four rounds.
        PAYMENT_CALLBACK_LEASE_SECONDS="3", PAYMENT_CALLBACK_RETRY_SCHEDULE="0,1,1,1,1",
    )  # fmt: skip
    try:
        yield running
    finally:
        running.stop()


def delivery_of(stack, checkout_id):
    with stack.db.transaction() as session:
        return session.execute(
            select(Delivery.status, Delivery.attempts, CallbackEvent.id)
            .join(CallbackEvent, CallbackEvent.seq == Delivery.seq)
            .where(CallbackEvent.checkout_id == checkout_id)
        ).one_or_none()


def test_a_worker_killed_mid_attempt_loses_nothing(stack, tmp_path):
    port = urlsplit(stack.platform_url).port
    with serving_receiver("/hooks", port=port) as platform:
        platform.delays = [6.0]  # the first attempt stalls: the worker dies while it waits
        checkout_id = stack.create_checkout()["checkoutId"]
        assert stack.api("POST", f"/v1/ticket-checkouts/{checkout_id}/cancel").status_code == 200
        platform.wait_for(1, timeout=15)

        stack.worker.process.send_signal(signal.SIGKILL)
        assert stack.worker.process.wait(10) == -signal.SIGKILL
        replacement = Worker(stack.env, tmp_path / "worker-2.log").start()
        stack.worker = replacement  # stop() SIGTERMs the replacement

        first, second = platform.wait_for(2, timeout=30)[:2]
        _status, attempts, event_id = stack.poll(
            lambda: (row := delivery_of(stack, checkout_id)) and row[0] == "delivered" and row,
            "the replacement worker to deliver the callback",
        )
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == event_id
    verify(stack.signing_secret, second.headers, second.body)
    assert second.event["type"] == "ticket_payment.canceled"
    assert second.event["data"]["checkoutId"] == checkout_id
    # The killed worker never recorded its attempt; the replacement's is the one that counts.
    assert attempts == 1
    with stack.db.transaction() as session:
        assert session.scalar(select(DeliveryAttempt.status_code)) == 200


def test_a_platform_down_for_several_rounds_gets_the_callback_when_it_comes_back(stack):
    port = urlsplit(stack.platform_url).port
    with serving_receiver("/hooks", port=port) as platform:
        platform.statuses = [503, 503, 500, 302]  # four bad rounds; a redirect is not followed
        checkout_id = stack.create_checkout()["checkoutId"]
        stack.api("POST", f"/v1/ticket-checkouts/{checkout_id}/cancel")
        stack.poll(
            lambda: (row := delivery_of(stack, checkout_id)) and row[0] == "delivered", "delivery"
        )
        received = platform.requests
    assert len({r.headers["webhook-id"] for r in received}) == 1
    with stack.db.transaction() as session:
        codes = list(
            session.scalars(select(DeliveryAttempt.status_code).order_by(DeliveryAttempt.number))
        )
    assert codes == [503, 503, 500, 302, 200]
