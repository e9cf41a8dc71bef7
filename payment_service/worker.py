"""The worker: runs the periodic jobs (callback delivery, refunds, expiry sweep, idempotency
purge) until told to stop."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from payment_service.callbacks.worker import (
    DEFAULT_CONCURRENCY,
    DeliveryPool,
    WakeListener,
    deliver_due,
    new_worker_id,
)
from payment_service.checkouts.expiry import sweep
from payment_service.db import Database
from payment_service.idempotency.services import purge_expired
from payment_service.payments.refunds import process_due_refunds
from payment_service.providers.registry import ProviderRegistry
from payment_service.settings import Settings

log = structlog.get_logger(__name__)

# How often deliveries are polled for. SQLite has no wake-up call, so it polls fast; on
# PostgreSQL a NOTIFY from the outbox wakes the worker and polling only catches retries
# that come due and anything a lost connection missed.
SQLITE_DELIVERY_POLL = 0.2
POSTGRESQL_DELIVERY_POLL = 1.0
# Refunds requested by a rejected callback (and their retries) are picked up within a second.
REFUND_POLL = 1.0


@dataclass
class Job:
    name: str
    every: float
    run: Callable[[], int]
    next_at: float = field(default=0.0)


class Worker:
    """Runs each job on its interval; SIGTERM/SIGINT finish the current job and the callback
    attempts in flight, then stop."""

    def __init__(
        self,
        db: Database,
        registry: ProviderRegistry,
        *,
        sweep_every: float = 1.0,
        settings: Settings | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
    ) -> None:
        self.stopping = threading.Event()
        self.wake = threading.Event()  # something to deliver: run the delivery job now
        self.jobs = [
            Job("expiry_sweep", sweep_every, lambda: sweep(db, registry)),
            Job("refunds", REFUND_POLL, lambda: process_due_refunds(db, registry)),
            Job("idempotency_purge", 3600.0, lambda: purge_expired(db)),
        ]
        self.worker_id = new_worker_id()
        self.deliveries: DeliveryPool | None = None
        self.listener: WakeListener | None = None
        self._delivery_job: Job | None = None
        if settings is not None:  # without settings (no retry schedule) nothing is delivered
            pool = self.deliveries = DeliveryPool(concurrency, on_done=self.wake.set)
            poll = POSTGRESQL_DELIVERY_POLL if db.is_postgresql else SQLITE_DELIVERY_POLL
            self._delivery_job = Job(
                "callback_delivery", poll, lambda: deliver_due(db, settings, self.worker_id, pool)
            )
            self.jobs.insert(0, self._delivery_job)
            if db.is_postgresql:
                self.listener = WakeListener(db.url, self.wake.set)

    def install_signal_handlers(self) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: self.stop())

    def stop(self) -> None:
        self.stopping.set()
        self.wake.set()

    def run_once(self) -> dict[str, int]:
        done: dict[str, int] = {}
        now = time.monotonic()
        for job in self.jobs:
            if self.stopping.is_set():  # SIGTERM: finish the job that runs, start no other
                break
            if job.next_at > now:
                continue
            try:
                done[job.name] = job.run()
            except Exception:  # a failed round is retried next round; the worker lives on
                log.exception("worker.job_failed", job=job.name)
            job.next_at = time.monotonic() + job.every
        return done

    def run_forever(self) -> None:
        log.info("worker.started", jobs=[job.name for job in self.jobs], workerId=self.worker_id)
        try:
            while not self.stopping.is_set():
                for name, count in self.run_once().items():
                    if count and name != "callback_delivery":  # attempts log their own line
                        log.info("worker.job_done", job=name, count=count)
                pause = min(job.next_at for job in self.jobs) - time.monotonic()
                if self.wake.wait(max(pause, 0.0)):
                    self.wake.clear()
                    if self._delivery_job is not None:
                        self._delivery_job.next_at = 0.0
        finally:
            self.close()
        log.info("worker.stopped")

    def close(self) -> None:
        if self.listener is not None:
            self.listener.close()
        if self.deliveries is not None:
            self.deliveries.close()
