"""The callback timeout bounds a whole attempt, not each socket read: a dripping platform."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from payment_service.callbacks.dispatcher import attempt_delivery, claim_due
from tests.factories import make_merchant
from tests.integration.callbacks.conftest import add_checkout, add_event
from tests.integration.callbacks.helpers import attempts_of, delivery_of
from tests.receivers import read_http_request

SCHEDULE = (0, 1, 2)
DRIP_SECONDS = 0.2  # between two bytes: far below any per-read timeout
PAD = b"x" * 50  # 50 dripped bytes: 10 s for the whole answer
HEADERS_DRIPPED = b"HTTP/1.1 200 OK\r\nX-Pad: " + PAD + b"\r\nContent-Length: 2\r\n\r\nok"
BODY_DRIPPED = b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n" + PAD


class DrippingPlatform:
    """Reads a request, then answers one byte every DRIP_SECONDS after the first ``at_once``."""

    def __init__(self, answer: bytes, at_once: int) -> None:
        self.answer, self.at_once = answer, at_once
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.1)
        self.origin = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(5)
                read_http_request(conn)
                try:
                    conn.sendall(self.answer[: self.at_once])
                    for byte in self.answer[self.at_once :]:
                        if self.stop.wait(DRIP_SECONDS):
                            return
                        conn.sendall(bytes([byte]))
                except OSError:
                    pass  # the sender hung up: what the deadline is for


@pytest.fixture(
    params=[(HEADERS_DRIPPED, 0), (BODY_DRIPPED, len(BODY_DRIPPED) - len(PAD))],
    ids=["status-line-and-headers", "body"],
)
def dripping(request: pytest.FixtureRequest) -> Iterator[DrippingPlatform]:
    platform = DrippingPlatform(*request.param)
    try:
        yield platform
    finally:
        platform.stop.set()
        platform.thread.join(5)
        platform.listener.close()


def test_a_platform_dripping_its_answer_is_cut_off_at_the_timeout(db, dripping):
    merchant = make_merchant(db, origins=(dripping.origin,), allow_http=True)
    event_id = add_event(db, add_checkout(db, merchant.merchant_id, dripping.origin + "/hooks"))
    [claim] = claim_due(db, "w1")

    started = time.monotonic()
    status = attempt_delivery(db, claim, allow_private=True, schedule=SCHEDULE, timeout=1.0)
    took = time.monotonic() - started

    # Each byte comes well within any per-read timeout; the whole answer would take 10 s.
    assert took < 2.5
    assert status == "pending"  # a timeout: retried on the schedule
    [attempt] = attempts_of(db, delivery_of(db, event_id).id)
    assert (attempt.status_code, attempt.error) == (None, "timed out after 1 s")
    assert 900 <= attempt.duration_ms < 2500
