"""The worker on SIGTERM: it starts nothing new, lets the callback attempts in flight finish,
records them (which releases their leases) and exits 0, so another worker takes over at once
instead of waiting for a lease to run out."""

from __future__ import annotations

import signal
import threading
import time
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from payment_service.callbacks.models import CallbackEvent, Delivery, DeliveryAttempt
from payment_service.callbacks.sender import SEND_TIMEOUT
from payment_service.callbacks.worker import DeliveryPool
from payment_service.db import Database
from payment_service.providers.registry import ProviderRegistry
from payment_service.worker import Job, Worker
from tests.e2e.stack import Stack
from tests.e2e.stack import Worker as WorkerProcess
from tests.receivers import serving_receiver

LEASE_SECONDS = 300  # far longer than the test: only a released lease explains a quick takeover


def test_closing_the_pool_runs_every_claimed_attempt():
    """Each submitted piece of work is a claimed delivery: close() must run it (its recorded
    result releases the lease), even one still waiting for a thread."""
    pool = DeliveryPool(1)
    first_started, release = threading.Event(), threading.Event()
    ran: list[str] = []

    def first() -> None:
        first_started.set()
        release.wait(5)
        ran.append("first")

    pool.submit(first)
    assert first_started.wait(5)
    pool.submit(lambda: ran.append("queued"))  # no free thread: it waits in the queue
    closing = threading.Thread(target=pool.close)
    closing.start()
    time.sleep(0.1)
    release.set()
    closing.join(5)
    assert not closing.is_alive()
    assert ran == ["first", "queued"]


def test_after_sigterm_the_worker_starts_no_other_job(tmp_path):
    database = Database(f"sqlite:///{tmp_path}/unused.db")
    worker = Worker(database, ProviderRegistry())
    ran: list[str] = []

    def stopped_during_this_job() -> int:
        ran.append("first")
        worker.stop()  # what the SIGTERM handler does
        return 1

    worker.jobs = [Job("first", 1.0, stopped_during_this_job), Job("second", 1.0, lambda: ran.append("second") or 1)]  # fmt: skip
    try:
        assert worker.run_once() == {"first": 1}
    finally:
        database.dispose()
    assert ran == ["first"]


@pytest.mark.e2e
@pytest.mark.slow
def test_sigterm_while_a_platform_stalls_hands_the_callback_to_another_worker(
    database_url, db, tmp_path
):
    stack = Stack.start(
        database_url, tmp_path,
        PAYMENT_CALLBACK_LEASE_SECONDS=str(LEASE_SECONDS), PAYMENT_CALLBACK_RETRY_SCHEDULE="0,1,1",
    )  # fmt: skip
    other = WorkerProcess(stack.env, tmp_path / "worker-2.log")
    try:
        port = urlsplit(stack.platform_url).port
        with serving_receiver("/hooks", port=port) as platform:
            platform.delays = [SEND_TIMEOUT + 5]  # the first attempt stalls past its timeout
            checkout_id = stack.create_checkout()["checkoutId"]
            assert stack.api("POST", f"/v1/ticket-checkouts/{checkout_id}/cancel").ok
            platform.wait_for(1, timeout=15)  # the first worker is in the middle of it
            other.start()

            stopping = time.monotonic()
            stack.worker.process.send_signal(signal.SIGTERM)
            exit_code = stack.worker.process.wait(SEND_TIMEOUT + 15)
            stopped = time.monotonic() - stopping

            second = platform.wait_for(2, timeout=30)[1]
            delivered = stack.poll(
                lambda: (row := delivery(stack, checkout_id)) and row.status == "delivered" and row,
                "the other worker to deliver the callback", timeout=30,
            )  # fmt: skip
            taken_over = time.monotonic() - stopping
            first, last = attempts(stack, delivered.id)
    finally:
        other.stop()
        stack.stop()
    assert exit_code == 0 and "worker.stopped" in stack.worker.log()
    assert stopped <= SEND_TIMEOUT + 10  # it waited for its attempt, bounded by the timeout
    assert taken_over < LEASE_SECONDS / 5  # the lease was released, not left to run out
    assert second.headers["webhook-id"] == delivered.event_id
    # The stopping worker recorded its attempt (a timeout); the other one's came after it.
    assert first.error == f"timed out after {SEND_TIMEOUT:g} s" and first.status_code is None
    assert last.status_code == 200 and last.worker_id != first.worker_id
    assert first.worker_id.split(":")[1] == str(stack.worker.process.pid)
    first_ended = first.started_at.timestamp() + first.duration_ms / 1000
    assert first_ended <= last.started_at.timestamp()  # never two attempts at once


def delivery(stack, checkout_id):
    with stack.db.transaction() as session:
        return session.execute(
            select(Delivery.id, Delivery.status, CallbackEvent.id.label("event_id"))
            .join(CallbackEvent, CallbackEvent.seq == Delivery.seq)
            .where(CallbackEvent.checkout_id == checkout_id)
        ).one_or_none()


def attempts(stack, delivery_id):
    with stack.db.transaction() as session:
        return list(
            session.scalars(
                select(DeliveryAttempt)
                .where(DeliveryAttempt.delivery_id == delivery_id)
                .order_by(DeliveryAttempt.number)
            )
        )
