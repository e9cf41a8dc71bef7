"""Delivery inside the worker: a bounded pool of senders, and the wake-up on commit."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import pytest

from payment_service import worker as worker_module
from payment_service.callbacks.worker import DeliveryPool, deliver_due
from payment_service.providers.registry import ProviderRegistry
from payment_service.worker import Worker
from tests.integration.callbacks.conftest import Reply, add_checkout, add_event
from tests.integration.callbacks.helpers import delivery_of


@pytest.fixture
def private_settings(settings):
    return replace(settings, allow_private_callbacks=True)


def test_a_slow_platform_does_not_hold_up_the_others(db, receiver, platform, private_settings):
    slow_checkout = add_checkout(db, platform.merchant_id, receiver.url("/slow"))
    fast_checkout = add_checkout(db, platform.merchant_id, receiver.url("/fast"))
    slow = add_event(db, slow_checkout)
    fast = add_event(db, fast_checkout)
    receiver.script(Reply(200, delay=1.5))  # the first request to arrive is the slow one...

    pool = DeliveryPool(4)
    try:
        assert deliver_due(db, private_settings, "w1", pool) == 2
        deadline = time.monotonic() + 1.0
        while delivery_of(db, fast).status != "delivered" and time.monotonic() < deadline:
            time.sleep(0.02)
        # ... whichever that is, the other is delivered while it still waits.
        statuses = {delivery_of(db, slow).status, delivery_of(db, fast).status}
        assert statuses == {"pending", "delivered"}
        assert pool.wait_idle(5)
    finally:
        pool.close()
    assert delivery_of(db, slow).status == delivery_of(db, fast).status == "delivered"


def test_deliver_due_claims_no_more_than_the_free_slots(db, receiver, platform, private_settings):
    receiver.default = Reply(200, delay=0.3)
    for _ in range(5):
        add_event(db, add_checkout(db, platform.merchant_id, receiver.url()))
    pool = DeliveryPool(2)
    try:
        assert deliver_due(db, private_settings, "w1", pool) == 2
        assert deliver_due(db, private_settings, "w1", pool) == 0  # both slots busy
        assert pool.wait_idle(5)
    finally:
        pool.close()


def test_the_worker_delivers_soon_after_the_commit_and_stops_cleanly(
    db, receiver, platform, private_settings, monkeypatch
):
    """On PostgreSQL the poll is made uselessly slow here, so only NOTIFY can explain a fast
    delivery; SQLite polls at 200 ms."""
    monkeypatch.setattr(worker_module, "POSTGRESQL_DELIVERY_POLL", 60.0)
    checkout_id = add_checkout(db, platform.merchant_id, receiver.url())
    runner = Worker(db, ProviderRegistry(), sweep_every=60.0, settings=private_settings)
    thread = threading.Thread(target=runner.run_forever)
    thread.start()
    try:
        if runner.listener is not None:
            assert runner.listener.listening.wait(5)
        time.sleep(0.3)  # let the first rounds pass: nothing is due yet
        committed = time.monotonic()
        event_id = add_event(db, checkout_id)
        [got] = receiver.wait_for(1, timeout=5)
        assert got.headers["webhook-id"] == event_id
        assert got.at - committed < 0.5
    finally:
        runner.stop()
        thread.join(20)
    assert not thread.is_alive()
    assert delivery_of(db, event_id).status == "delivered"
