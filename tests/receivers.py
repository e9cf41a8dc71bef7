"""A real HTTP receiver on 127.0.0.1 that records every POST, for webhook and callback tests."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def event(self) -> dict[str, Any]:
        return json.loads(self.body)  # type: ignore[no-any-return]


@dataclass
class Receiver:
    """Records every POST; ``statuses`` are answered in turn, then 200."""

    url: str = ""
    requests: list[Received] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    delays: list[float] = field(default_factory=list)  # seconds to stall, request by request
    changed: threading.Condition = field(default_factory=threading.Condition)

    def record(self, received: Received) -> int:
        with self.changed:
            self.requests.append(received)
            self.changed.notify_all()
            delay = self.delays.pop(0) if self.delays else 0.0
            status = self.statuses.pop(0) if self.statuses else 200
        time.sleep(delay)
        return status

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        with self.changed:
            while len(self.requests) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"expected {count} requests, got {len(self.requests)}")
                self.changed.wait(left)
            return list(self.requests)

    def settle(self, seconds: float = 0.5) -> list[Received]:
        """Everything received after a quiet pause (to show that nothing more arrives)."""
        time.sleep(seconds)
        with self.changed:
            return list(self.requests)


class _Server(ThreadingHTTPServer):
    # socketserver's listen backlog is 5. Three callback workers of 8 threads each overflow
    # it, and every dropped SYN costs a connect 1, 3, 7... s (seen: 5 drops in one run of
    # test_delivery_scale); on a slow machine an attempt can then run out of its 15 s and be
    # retried, which that test counts as a second attempt. A platform's server has a backlog
    # in the hundreds (gunicorn: 2048).
    request_queue_size = 256


@contextmanager
def serving_receiver(path: str = "/hooks", port: int = 0) -> Iterator[Receiver]:
    """Start a receiver in a thread; ``receiver.url`` is its address plus ``path``."""
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            status = state.record(Received(self.path, dict(self.headers.items()), body))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = _Server(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}{path}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def read_http_request(conn: socket.socket) -> bytes:
    """One whole HTTP/1.1 request (head and Content-Length body) from a raw socket, for test
    servers that answer by hand (dripped bytes, a dropped connection)."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += conn.recv(65536)
    return head + b"\r\n\r\n" + body
