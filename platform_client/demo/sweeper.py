"""Sweeper: releases holds that outlived their TTL even when no callback says so."""

from __future__ import annotations

import logging
import threading
from typing import Protocol

log = logging.getLogger(__name__)


class SweepsHolds(Protocol):
    def sweep_expired_holds(self) -> int: ...


class Sweeper:
    """Calls ``ledger.sweep_expired_holds()`` every ``every`` seconds on a daemon thread.

    Any number may run (one per server process): the ledger releases each hold once. A failed
    sweep (database down) is logged and tried again at the next tick.
    """

    def __init__(self, ledger: SweepsHolds, every: float) -> None:
        if every <= 0:
            raise ValueError("every must be > 0 seconds")
        self._ledger = ledger
        self._every = every
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hold-sweeper", daemon=True)

    def start(self) -> Sweeper:
        self._thread.start()
        return self

    def stop(self, timeout: float = 10) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def sweep_once(self) -> int:
        try:
            released = self._ledger.sweep_expired_holds()
        except Exception:
            log.exception("sweeper.failed")
            return 0
        if released:
            log.info("sweeper.released holds=%d", released)
        return released

    def _run(self) -> None:
        while not self._stopping.wait(self._every):
            self.sweep_once()
