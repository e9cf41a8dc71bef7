"""A wall-clock deadline for one callback attempt (CONTRACT §8: "a timeout (15 s)").

A socket timeout bounds each read or write, not their sum: a platform that drips its answer a
byte at a time would hold an attempt, and a sender slot, for as long as it likes. `Deadline`
gives the time left for a connect, and at the deadline one watchdog thread shuts the attempt's
connections down, which ends whatever step is blocked on them (TLS handshake, sending, the
status line, headers, body). The pools below make connections the current deadline watches.
"""

from __future__ import annotations

import heapq
import itertools
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from typing import Any

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection


class Deadline:
    """The wall-clock end of one attempt. A socket timeout bounds each read or write, not their
    sum: a platform that drips its answer a byte at a time would hold an attempt, and a sender
    slot, for as long as it likes. At the deadline the watchdog shuts the attempt's connection
    down, which ends whatever step is blocked on it (TLS handshake, sending, status line,
    headers, body); `send` then reports a timeout, whatever that step raised."""

    def __init__(self, seconds: float) -> None:
        self.at = time.monotonic() + seconds
        self._lock = threading.Lock()
        self._watched: list[socket.socket] = []
        self._cut = False
        self._ended = False

    def left(self) -> float:
        """The seconds left, for a step's socket timeout; TimeoutError when none are."""
        left = self.at - time.monotonic()
        if left <= 0:
            raise TimeoutError
        return left

    @contextmanager
    def watching(self) -> Iterator[None]:
        """Connections used inside are watched (`_WatchedConnection` looks the deadline up)."""
        _WATCHDOG.add(self)
        token = _CURRENT_DEADLINE.set(self)
        try:
            yield
        finally:
            _CURRENT_DEADLINE.reset(token)

    def watch(self, sock: socket.socket) -> None:
        # A duplicate descriptor: shutting it down shuts the connection down (shutdown acts on
        # the connection, close on a descriptor), and it stays valid while urllib3 wraps the
        # socket in TLS (which detaches it) or closes its own.
        if sock.fileno() < 0:  # closed: nothing to cut
            return
        watched = socket.fromfd(sock.fileno(), sock.family, sock.type, sock.proto)
        with self._lock:
            self._watched.append(watched)
            if self._cut:
                _shut_down(watched)

    def cut_off(self) -> None:
        """The watchdog's call at the deadline; nothing once the attempt has ended."""
        with self._lock:
            if self._ended:
                return
            self._cut = True
            for watched in self._watched:
                _shut_down(watched)

    def end(self) -> bool:
        """Stop watching; whether the deadline cut the attempt off."""
        with self._lock:
            self._ended = True
            watched, self._watched = self._watched, []
        for sock in watched:
            sock.close()
        return self._cut


def _shut_down(sock: socket.socket) -> None:
    with suppress(OSError):  # already closed by the platform
        sock.shutdown(socket.SHUT_RDWR)


_CURRENT_DEADLINE: ContextVar[Deadline | None] = ContextVar("callback_deadline", default=None)


class _Watchdog:
    """One daemon thread that cuts off the attempts whose deadline has passed. An ended attempt
    stays queued until its deadline (then `cut_off` does nothing): no search to remove it."""

    def __init__(self) -> None:
        self._due: list[tuple[float, int, Deadline]] = []
        self._order = itertools.count()  # breaks ties: deadlines are never compared
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None

    def add(self, deadline: Deadline) -> None:
        with self._changed:
            heapq.heappush(self._due, (deadline.at, next(self._order), deadline))
            if self._thread is None or not self._thread.is_alive():  # the first, or after a fork
                self._thread = threading.Thread(
                    target=self._run, name="callback-deadlines", daemon=True
                )
                self._thread.start()
            elif self._due[0][2] is deadline:  # sooner than the one it sleeps until
                self._changed.notify()

    def _run(self) -> None:
        while True:
            with self._changed:
                while not self._due or self._due[0][0] > time.monotonic():
                    self._changed.wait(self._due[0][0] - time.monotonic() if self._due else None)
                deadline = heapq.heappop(self._due)[2]
            deadline.cut_off()


_WATCHDOG = _Watchdog()


class _WatchedConnection(HTTPConnection):
    """A connection whose socket the current attempt's deadline can shut down."""

    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()  # before any TLS handshake, which the deadline bounds too
        _watch(sock)
        return sock

    def request(self, *args: Any, **kwargs: Any) -> None:
        if self.sock is not None:  # kept from an earlier attempt, or connected for TLS
            _watch(self.sock)
        super().request(*args, **kwargs)


class _WatchedHTTPSConnection(_WatchedConnection, HTTPSConnection):
    pass


def _watch(sock: socket.socket) -> None:
    deadline = _CURRENT_DEADLINE.get()
    if deadline is not None:
        deadline.watch(sock)


class HTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _WatchedConnection


class HTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection
