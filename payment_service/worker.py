"""The worker: runs the periodic jobs (expiry sweep, idempotency purge) until told to stop."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from payment_service.checkouts.expiry import sweep
from payment_service.db import Database
from payment_service.idempotency.services import purge_expired
from payment_service.providers.registry import ProviderRegistry

log = structlog.get_logger(__name__)


@dataclass
class Job:
    name: str
    every: float
    run: Callable[[], int]
    next_at: float = field(default=0.0)


class Worker:
    """Runs each job on its interval; SIGTERM/SIGINT finish the current job, then stop."""

    def __init__(
        self, db: Database, registry: ProviderRegistry, *, sweep_every: float = 1.0
    ) -> None:
        self.stopping = threading.Event()
        self.jobs = [
            Job("expiry_sweep", sweep_every, lambda: sweep(db, registry)),
            Job("idempotency_purge", 3600.0, lambda: purge_expired(db)),
        ]

    def install_signal_handlers(self) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: self.stopping.set())

    def run_once(self) -> dict[str, int]:
        done: dict[str, int] = {}
        now = time.monotonic()
        for job in self.jobs:
            if job.next_at > now:
                continue
            try:
                done[job.name] = job.run()
            except Exception:  # a failed round is retried next round; the worker lives on
                log.exception("worker.job_failed", job=job.name)
            job.next_at = time.monotonic() + job.every
        return done

    def run_forever(self) -> None:
        log.info("worker.started", jobs=[job.name for job in self.jobs])
        while not self.stopping.is_set():
            for name, count in self.run_once().items():
                if count:
                    log.info("worker.job_done", job=name, count=count)
            self.stopping.wait(min(job.next_at for job in self.jobs) - time.monotonic())
        log.info("worker.stopped")
