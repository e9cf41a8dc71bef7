"""The webhook sender: a daemon thread with a due-time queue, copies, delays and short retries."""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import requests
from sqlalchemy import update

from payment_service.sandbox_psp.models import WebhookEvent
from payment_service.sandbox_psp.signature import HEADER, sign_webhook
from payment_service.sandbox_psp.store import Store

log = logging.getLogger(__name__)

BACKOFF_SECONDS = (0.2, 0.5, 1.0, 2.0)  # between the 5 attempts of one copy
TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class Delivery:
    """One event to POST ``copies`` times to ``url`` (every copy has the same event id)."""

    event_id: str
    url: str
    body: bytes
    copies: int


@dataclass
class _Progress:
    remaining: int
    delivered: int = 0
    attempts: int = 0
    last_error: str | None = None


@dataclass(order=True)
class _Job:
    due: float
    order: int
    delivery: Delivery = field(compare=False)
    attempt: int = field(compare=False, default=1)


class WebhookSender:
    """Per process; started on first use (after a fork too), stopped by ``close()``.

    One thread sends in due order, so events released together arrive in the order released.
    A receiver that hangs holds the queue for up to the 10 s timeout: fine for a sandbox.
    """

    def __init__(
        self,
        secret: str,
        store: Store,
        *,
        idle_task: Callable[[], object] | None = None,
        idle_interval: float = 5.0,
        backoff: tuple[float, ...] = BACKOFF_SECONDS,
    ) -> None:
        self._secret = secret
        self._store = store
        self._idle_task = idle_task
        self._idle_interval = idle_interval
        self._backoff = backoff
        self._wakeup = threading.Condition()
        self._heap: list[_Job] = []
        self._order = itertools.count()
        self._progress: dict[str, _Progress] = {}
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._stopping = False

    def ensure_started(self) -> None:
        with self._wakeup:
            if self._stopping:
                return
            if self._thread is not None and self._pid == os.getpid():
                return
            # A forked child inherits the object but not the thread: start a fresh queue.
            self._heap.clear()
            self._progress.clear()
            self._pid = os.getpid()
            self._thread = threading.Thread(target=self._run, name="sandbox-webhooks", daemon=True)
            self._thread.start()

    def enqueue(self, delivery: Delivery, delay_seconds: float = 0.0) -> None:
        self.ensure_started()
        with self._wakeup:
            self._progress[delivery.event_id] = _Progress(remaining=delivery.copies)
            due = time.monotonic() + delay_seconds
            for _ in range(delivery.copies):
                heapq.heappush(self._heap, _Job(due, next(self._order), delivery))
            self._wakeup.notify()

    def close(self, timeout: float = 15.0) -> None:
        with self._wakeup:
            self._stopping = True
            self._wakeup.notify()
            thread, self._thread = self._thread, None
        if thread is not None and thread.is_alive():
            thread.join(timeout)

    def _run(self) -> None:
        next_idle = time.monotonic() + self._idle_interval
        while True:
            job: _Job | None = None
            with self._wakeup:
                while not self._stopping:
                    now = time.monotonic()
                    if self._heap and self._heap[0].due <= now:
                        job = heapq.heappop(self._heap)
                        break
                    if now >= next_idle:
                        break
                    wake = min(next_idle, self._heap[0].due if self._heap else next_idle)
                    self._wakeup.wait(max(wake - now, 0.001))
                if self._stopping:
                    return
            if job is None:
                next_idle = time.monotonic() + self._idle_interval
                self._run_idle_task()
            else:
                self._attempt(job)

    def _run_idle_task(self) -> None:
        if self._idle_task is None:
            return
        try:
            self._idle_task()
        except Exception:
            log.exception("sandbox idle task failed")

    def _attempt(self, job: _Job) -> None:
        delivery = job.delivery
        error = self._post(delivery)
        with self._wakeup:
            progress = self._progress.get(delivery.event_id)
            if progress is None:  # lost to a fork
                return
            progress.attempts += 1
            if error is not None and job.attempt <= len(self._backoff):
                progress.last_error = error
                due = time.monotonic() + self._backoff[job.attempt - 1]
                heapq.heappush(self._heap, _Job(due, next(self._order), delivery, job.attempt + 1))
                return
            progress.remaining -= 1
            if error is None:
                progress.delivered += 1
            else:
                progress.last_error = error
            if progress.remaining:
                return
            del self._progress[delivery.event_id]
        self._record(delivery, progress)

    def _post(self, delivery: Delivery) -> str | None:
        """POST one copy; None when the receiver answered 2xx, else what went wrong."""
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            HEADER: sign_webhook(self._secret, timestamp, delivery.body),
            "User-Agent": "SandboxPSP-Webhooks/1.0",
        }
        try:
            with (
                requests.Session() as http,
                http.post(
                    delivery.url,
                    data=delivery.body,
                    headers=headers,
                    timeout=TIMEOUT_SECONDS,
                    allow_redirects=False,
                ) as response,
            ):
                if 200 <= response.status_code < 300:
                    return None
                return f"HTTP {response.status_code}"
        except requests.RequestException as exc:
            return f"{type(exc).__name__}: {exc}"

    def _record(self, delivery: Delivery, progress: _Progress) -> None:
        status = "delivered" if progress.delivered == delivery.copies else "failed"
        if status == "failed":
            log.warning("sandbox webhook %s failed: %s", delivery.event_id, progress.last_error)
        try:
            with self._store.transaction() as db:
                db.execute(
                    update(WebhookEvent)
                    .where(WebhookEvent.id == delivery.event_id)
                    .values(
                        status=status,
                        attempts=WebhookEvent.attempts + progress.attempts,
                        delivered_copies=progress.delivered,
                        last_error=progress.last_error,
                    )
                )
        except Exception:
            log.exception("could not record webhook %s", delivery.event_id)
