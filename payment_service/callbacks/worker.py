"""Running deliveries in a worker: a bounded pool of senders and the PostgreSQL wake-up call."""

from __future__ import annotations

import os
import secrets
import socket
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

import psycopg
import structlog
from sqlalchemy.engine import make_url

from payment_service.callbacks.dispatcher import CLAIM_LIMIT, attempt_delivery, claim_due
from payment_service.callbacks.outbox import WAKE_CHANNEL
from payment_service.callbacks.recording import GroupRecorder
from payment_service.callbacks.sender import close_idle_connections
from payment_service.db import Database
from payment_service.settings import Settings

log = structlog.get_logger(__name__)

DEFAULT_CONCURRENCY = 8


def new_worker_id() -> str:
    """Who holds a lease: host, process and a random tag (pids repeat across restarts)."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(3)}"


class DeliveryPool:
    """Threads that send attempts, at most ``size`` at once.

    A worker claims no more deliveries than there are free slots, so a claimed delivery never
    waits in a queue while its lease runs, and a slow platform holds only the slots it uses.
    A slot is busy until its attempt is recorded; the threads record through one shared
    ``recorder`` (a group commit), so under load slots free up, and are claimed again, a few
    at a time.
    """

    def __init__(self, size: int = DEFAULT_CONCURRENCY, on_done: Callable[[], None] | None = None):
        self.size = size
        self.recorder = GroupRecorder()
        self._busy = 0
        self._changed = threading.Condition()
        self._on_done = on_done
        self._executor = ThreadPoolExecutor(size, thread_name_prefix="callback-send")

    def free_slots(self) -> int:
        with self._changed:
            return self.size - self._busy

    def submit(self, work: Callable[[], object]) -> None:
        with self._changed:
            self._busy += 1
        self._executor.submit(self._run, work)

    def _run(self, work: Callable[[], object]) -> None:
        try:
            work()
        except Exception:  # the lease runs out and another round retries it
            log.exception("callback.attempt_failed")
        finally:
            with self._changed:
                self._busy -= 1
                self._changed.notify_all()
            if self._on_done is not None:
                self._on_done()

    def wait_idle(self, timeout: float | None = None) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: self._busy == 0, timeout)

    def close(self) -> None:
        """Let every submitted attempt run and finish (each is bounded by its timeout), then
        stop. Each one is a claimed delivery: recording its result is what releases its lease,
        so none is cancelled (a cancelled one would stay leased until the lease ran out)."""
        self._executor.shutdown(wait=True, cancel_futures=False)


def deliver_due(
    db: Database,
    settings: Settings,
    worker_id: str,
    pool: DeliveryPool,
    *,
    resolve: Callable[..., list[Any]] = socket.getaddrinfo,
) -> int:
    """Claim as many due deliveries as the pool has free slots and start them; the count."""
    close_idle_connections()
    free = pool.free_slots()
    if free <= 0:
        return 0
    claims = claim_due(
        db, worker_id, limit=min(free, CLAIM_LIMIT), lease_seconds=settings.callback_lease_seconds
    )
    for claim in claims:
        pool.submit(
            partial(
                attempt_delivery, db, claim,
                allow_private=settings.allow_private_callbacks,
                schedule=settings.callback_retry_schedule, resolve=resolve,
                recorder=pool.recorder,
            )
        )  # fmt: skip
    return len(claims)


class WakeListener:
    """LISTENs on a dedicated PostgreSQL connection and calls ``on_wake`` for every NOTIFY an
    outbox commit sends; it reconnects after errors, while polling covers the gap."""

    def __init__(self, database_url: str, on_wake: Callable[[], None], *, retry_after: float = 1.0):
        # SQLAlchemy's "postgresql+psycopg://" is not a libpq URL.
        url = make_url(database_url).set(drivername="postgresql")
        self._conninfo = url.render_as_string(hide_password=False)
        self._on_wake = on_wake
        self._retry_after = retry_after
        self._stop = threading.Event()
        self.listening = threading.Event()
        self._thread = threading.Thread(target=self._run, name="callback-listen", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f"LISTEN {WAKE_CHANNEL}")
                    self.listening.set()
                    self._on_wake()  # whatever was committed while nobody listened
                    while not self._stop.is_set():
                        for _ in conn.notifies(timeout=0.5):
                            self._on_wake()
            except psycopg.Error as exc:
                self.listening.clear()
                log.warning("callback.listen_failed", error=type(exc).__name__)
                self._stop.wait(self._retry_after)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
