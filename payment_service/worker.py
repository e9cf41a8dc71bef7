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
# A job that keeps failing (the database is down) waits twice as long after each failure, up
# to this; it runs at its own interval again after its first success.
MAX_FAILURE_BACKOFF = 30.0


@dataclass
class Job:
    name: str
    every: float
    run: Callable[[], int]
    next_at: float = field(default=0.0)
    failures: int = 0  # failed rounds in a row

    def pause_after_failure(self) -> float:
        # The exponent stops growing long before the cap: 2 ** 1024 is no float (an outage of
        # eight hours would otherwise end the worker with an OverflowError).
        doubled = self.every * 2 ** min(self.failures - 1, 32)
        return min(doubled, max(self.every, MAX_FAILURE_BACKOFF))


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
        max_attempts = (settings or Settings()).max_payment_attempts
        self.jobs = [
            Job(
                "expiry_sweep", sweep_every, lambda: sweep(db, registry, max_attempts=max_attempts)
            ),
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
            except Exception as exc:  # a failed round is retried later; the worker lives on
                job.failures += 1
                self._log_failure(job, exc)
                job.next_at = time.monotonic() + job.pause_after_failure()
                continue
            if job.failures:
                log.info("worker.job_recovered", job=job.name, failures=job.failures)
                job.failures = 0
            job.next_at = time.monotonic() + job.every
        return done

    @staticmethod
    def _log_failure(job: Job, exc: Exception) -> None:
        """The first failure in a row with its traceback; the next ones (a database that stays
        down fails every job every round) as one line each, at a slowing pace."""
        if job.failures == 1:
            log.exception("worker.job_failed", job=job.name)
            return
        first_line = (str(exc).strip().splitlines() or [""])[0]
        log.warning(
            "worker.job_failed", job=job.name, failures=job.failures,
            error=f"{type(exc).__name__}: {first_line}", retryIn=round(job.pause_after_failure(), 1),
        )  # fmt: skip

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
