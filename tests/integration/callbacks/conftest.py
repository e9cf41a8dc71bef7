"""A real HTTP receiver for callbacks, scriptable per request, and builders for outbox events."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from payment_service.callbacks.outbox import record_event
from payment_service.checkouts.models import Checkout
from payment_service.db import Database, utcnow
from payment_service.payments.models import Payment
from shared_contracts.events import EventType
from tests.factories import MerchantCredentials, make_merchant


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: bytes = b'{"ok":true}'
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    at: float  # time.monotonic()


class Receiver:
    """A platform stand-in on 127.0.0.1: answers each request with the next scripted Reply
    (then 200 by default) and records what it got."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.replies: list[Reply] = []
        self.default = Reply()
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str = "/hooks") -> str:
        return self.origin + path

    def script(self, *replies: Reply) -> None:
        with self.lock:
            self.replies.extend(replies)

    def _next(self, received: Received) -> Reply:
        with self.lock:
            self.received.append(received)
            return self.replies.pop(0) if self.replies else self.default

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                headers = {name.lower(): value for name, value in self.headers.items()}
                reply = receiver._next(Received(self.path, headers, body, time.monotonic()))
                if reply.delay:
                    time.sleep(reply.delay)
                try:
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.send_header("content-length", str(len(reply.body)))
                    self.end_headers()
                    self.wfile.write(reply.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the sender gave up (its timeout): that is the point of the test

            def log_message(self, *args: object) -> None:
                pass

        return Handler

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return list(self.received)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    instance = Receiver()
    instance.thread.start()
    try:
        yield instance
    finally:
        instance.server.shutdown()
        instance.server.server_close()
        instance.thread.join(5)


@pytest.fixture
def platform(db: Database, receiver: Receiver) -> MerchantCredentials:
    """A merchant whose callbacks go to the receiver."""
    return make_merchant(db, origins=(receiver.origin,), allow_http=True)


def add_checkout(db: Database, merchant_id: str, callback_url: str) -> str:
    checkout_id = "chk_" + secrets.token_hex(8)
    with db.transaction() as session:
        session.add(
            Checkout(
                id=checkout_id, merchant_id=merchant_id,
                reservation_id="res_" + secrets.token_hex(6), event_id="evt_42",
                tier_id="tier_7", order_name="Seoul Marathon", amount=30000, currency="KRW",
                success_url=callback_url, cancel_url=callback_url, callback_url=callback_url,
                provider="sandbox", expires_at=utcnow() + timedelta(minutes=30),
            )
        )  # fmt: skip
    return checkout_id


def add_event(
    db: Database,
    checkout_id: str,
    event_type: EventType = EventType.EXPIRED,
    *,
    request_id: str | None = "req_test_1",
) -> str:
    """Record an event the way services do (in a transaction); its id, the webhook-id."""
    with db.transaction() as session:
        checkout = session.get(Checkout, checkout_id)
        assert checkout is not None
        return record_event(session, checkout, event_type, request_id=request_id).id


def add_paid_event(db: Database, checkout_id: str) -> str:
    """Mark the checkout paid with a captured payment and record its ticket_payment.paid; the
    event's id. A rejection of it then has a payment to refund."""
    now = utcnow()
    with db.transaction() as session:
        checkout = session.get(Checkout, checkout_id)
        assert checkout is not None
        payment_id = "pay_" + secrets.token_hex(8)
        session.add(
            Payment(
                id=payment_id, checkout_id=checkout.id, merchant_id=checkout.merchant_id,
                provider="sandbox", provider_payment_id="sbp_" + secrets.token_hex(8),
                status="succeeded", amount=checkout.amount, currency=checkout.currency,
                tx_id="tx_1", occurred_at=now,
            )
        )  # fmt: skip
        checkout.status, checkout.paid_at = "paid", now
        extra = {"paymentId": payment_id, "provider": "sandbox", "txId": "tx_1",
                 "paidAt": now.isoformat().replace("+00:00", "Z")}  # fmt: skip
        return record_event(session, checkout, EventType.PAID, extra, request_id="req_pay_1").id
