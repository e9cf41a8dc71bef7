"""Kept-alive connections to platforms: reused across attempts, never past the SSRF guard."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from payment_service.callbacks.dispatcher import attempt_delivery, claim_due
from payment_service.callbacks.sender import close_idle_connections
from tests.factories import make_merchant
from tests.integration.callbacks.conftest import add_checkout, add_event

SCHEDULE = (0, 1, 2)


class CountingPlatform:
    """Answers 204 and counts the TCP connections its requests came over."""

    def __init__(self, protocol: str) -> None:
        self.keeps_alive = protocol == "HTTP/1.1"
        self.connections: set[tuple[str, int]] = set()
        self.requests = 0
        platform = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = protocol

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                platform.connections.add(self.client_address)
                platform.requests += 1
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True  # a kept connection must not hold up the shutdown
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture(params=["HTTP/1.1", "HTTP/1.0"])
def counting(request: pytest.FixtureRequest) -> Iterator[CountingPlatform]:
    platform = CountingPlatform(request.param)
    try:
        yield platform
    finally:
        platform.server.shutdown()
        platform.server.server_close()


def _deliver(db, merchant_id, platform, *, allow_private=True):
    add_event(db, add_checkout(db, merchant_id, platform.origin + "/hooks"))
    [claim] = claim_due(db, "w1")
    return attempt_delivery(db, claim, allow_private=allow_private, schedule=SCHEDULE)


def test_attempts_to_one_platform_share_a_kept_connection(db, counting):
    merchant = make_merchant(db, origins=(counting.origin,), allow_http=True)
    assert _deliver(db, merchant.merchant_id, counting) == "delivered"
    assert _deliver(db, merchant.merchant_id, counting) == "delivered"
    assert counting.requests == 2
    # Control: a platform that closes each connection (HTTP/1.0) gets a new one per attempt.
    assert len(counting.connections) == (1 if counting.keeps_alive else 2)


def test_a_kept_connection_never_skips_the_check_of_the_address(db, counting):
    merchant = make_merchant(db, origins=(counting.origin,), allow_http=True)
    assert _deliver(db, merchant.merchant_id, counting) == "delivered"  # a connection is kept
    # The same loopback platform when private callbacks are not allowed: refused before any
    # connection is used, kept or new.
    assert _deliver(db, merchant.merchant_id, counting, allow_private=False) == "pending"
    assert counting.requests == 1


def test_idle_connections_are_closed(db, counting):
    merchant = make_merchant(db, origins=(counting.origin,), allow_http=True)
    assert _deliver(db, merchant.merchant_id, counting) == "delivered"
    close_idle_connections(0.0)  # what the worker does for connections idle for a while
    assert _deliver(db, merchant.merchant_id, counting) == "delivered"
    assert len(counting.connections) == 2
