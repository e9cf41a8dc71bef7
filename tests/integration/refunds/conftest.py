"""Refund fixtures: the real sandbox PSP over HTTP, a platform stand-in that answers with error
bodies, and checkouts paid through the sandbox's hosted page.

Everything here talks over real sockets on 127.0.0.1: the payment service's adapter to the
sandbox PSP, the dispatcher to the platform stand-in, and the sandbox's webhooks to a sink.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import select

from payment_service.callbacks.dispatcher import attempt_delivery, claim_due
from payment_service.callbacks.models import CallbackEvent, Delivery
from payment_service.checkouts.models import Checkout
from payment_service.db import Database, utcnow
from payment_service.payments.models import Payment, Refund
from payment_service.payments.refunds import process_due_refunds
from payment_service.payments.services import apply_payment
from payment_service.providers.base import ProviderPayment, ProviderRefund, SessionRequest
from payment_service.providers.registry import ProviderRegistry
from payment_service.providers.sandbox import SandboxProvider
from payment_service.sandbox_psp import SandboxConfig, close_sandbox_app, create_sandbox_app
from tests.factories import MerchantCredentials, make_merchant
from tests.integration.callbacks.conftest import Receiver, Reply, add_checkout
from tests.integration.providers.conftest import (
    API_KEY,
    WEBHOOK_SECRET,
    buyer_pays,
    configure,
    serving,
)
from tests.receivers import Receiver as Sink
from tests.receivers import serving_receiver

SCHEDULE = (0, 1, 2)
MAX_ATTEMPTS = 3
PAY_REQUEST_ID = "req_paid_webhook_1"
REJECTION = b'{"error":{"code":"registration_closed","message":"The tier is sold out."}}'

__all__ = ["MAX_ATTEMPTS", "PAY_REQUEST_ID", "REJECTION", "SCHEDULE", "Reply", "configure"]


class PathReceiver(Receiver):
    """The platform stand-in; replies may be scripted per path (then the shared script, then
    200), so that many checkouts can each be answered their own way in any order."""

    def __init__(self) -> None:
        super().__init__()
        self.by_path: dict[str, list[Reply]] = {}

    def script_path(self, path: str, *replies: Reply) -> None:
        with self.lock:
            self.by_path.setdefault(path, []).extend(replies)

    def _next(self, received: Any) -> Reply:
        with self.lock:
            queued = self.by_path.get(received.path)
            if queued:
                self.received.append(received)
                return queued.pop(0)
        return super()._next(received)


@pytest.fixture
def receiver() -> Iterator[PathReceiver]:
    instance = PathReceiver()
    instance.thread.start()
    try:
        yield instance
    finally:
        instance.server.shutdown()
        instance.server.server_close()
        instance.thread.join(5)


@pytest.fixture
def platform(db: Database, receiver: PathReceiver) -> MerchantCredentials:
    return make_merchant(db, origins=(receiver.origin,), allow_http=True)


# -- the sandbox PSP ---------------------------------------------------------------------------


@pytest.fixture
def sink() -> Iterator[Sink]:
    """Where the sandbox's own webhooks go (answers 200); no test reads them."""
    with serving_receiver("/hooks/sandbox") as state:
        yield state


@pytest.fixture
def sandbox_url(tmp_path: Path, sink: Sink) -> Iterator[str]:
    """The sandbox PSP served over HTTP, on its own SQLite file; closed before the sink."""
    config = SandboxConfig(
        api_key=API_KEY,
        webhook_secret=WEBHOOK_SECRET,
        database_url=f"sqlite:///{tmp_path / 'sandbox-psp.db'}",
    )
    app = create_sandbox_app(config)
    try:
        with serving(app) as url:
            yield url
    finally:
        close_sandbox_app(app)


class RecordingProvider:
    """The real sandbox adapter, recording each refund call's idempotency key."""

    def __init__(self, inner: SandboxProvider) -> None:
        self.inner = inner
        self.name = inner.name
        self.refund_keys: list[str] = []

    def refund(
        self, payment_id: str, amount: int, *, idempotency_key: str, reason: str
    ) -> ProviderRefund:
        self.refund_keys.append(idempotency_key)
        return self.inner.refund(payment_id, amount, idempotency_key=idempotency_key, reason=reason)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.fixture
def provider(sandbox_url: str) -> Iterator[RecordingProvider]:
    adapter = SandboxProvider(
        sandbox_url, API_KEY, WEBHOOK_SECRET, connect_timeout=2.0, read_timeout=5.0
    )
    with adapter:
        yield RecordingProvider(adapter)


@pytest.fixture
def registry(provider: RecordingProvider) -> ProviderRegistry:
    return ProviderRegistry([provider])  # type: ignore[list-item]


# -- paying and delivering ---------------------------------------------------------------------


@dataclass
class Paid:
    checkout_id: str
    payment_id: str  # ours, pay_…
    provider_payment_id: str  # the sandbox's, sbp_…
    paid_event_id: str


@dataclass
class World:
    db: Database
    receiver: PathReceiver
    merchant: MerchantCredentials
    provider: RecordingProvider
    registry: ProviderRegistry
    sandbox_url: str
    sink_url: str
    paid: list[Paid] = field(default_factory=list)

    def pay(self, path: str = "/hooks") -> Paid:
        """A checkout paid by a buyer on the sandbox's hosted page, applied as the webhook
        would apply it: the payment row, the checkout paid, ticket_payment.paid in the outbox."""
        checkout_id = add_checkout(self.db, self.merchant.merchant_id, self.receiver.url(path))
        payment = self.buyer_pays(checkout_id)
        with self.db.transaction() as tx:
            checkout = apply_payment(
                tx, "sandbox", payment, max_attempts=MAX_ATTEMPTS, request_id=PAY_REQUEST_ID
            )
            assert checkout is not None and checkout.status == "paid"
            ours = tx.scalars(select(Payment).where(Payment.checkout_id == checkout_id)).one()
            event = tx.scalars(
                select(CallbackEvent).where(
                    CallbackEvent.checkout_id == checkout_id,
                    CallbackEvent.type == "ticket_payment.paid",
                )
            ).one()
            paid = Paid(checkout_id, ours.id, payment.payment_id, event.id)
        self.paid.append(paid)
        return paid

    def buyer_pays(self, checkout_id: str, amount: int = 30000) -> ProviderPayment:
        """A buyer pays ``amount`` KRW (the checkouts' price unless told otherwise) for the
        checkout in a new sandbox session; the captured payment."""
        session = self.provider.create_session(
            SessionRequest(
                checkout_id=checkout_id, amount=amount, currency="KRW",
                description="Seoul Marathon 2027 - Full course",
                return_url=f"https://pay.test/return/{checkout_id}",
                cancel_url=f"https://pay.test/checkout/{checkout_id}",
                webhook_url=self.sink_url,
                expires_at=datetime.now(UTC) + timedelta(minutes=30),
                idempotency_key="session-" + secrets.token_hex(8),
            )
        )  # fmt: skip
        buyer_pays(session.redirect_url)
        payment = self.provider.retrieve_session(session.session_id).last_payment
        assert payment is not None and payment.status == "succeeded"
        return payment

    def deliver(self, now: datetime | None = None) -> list[str]:
        """One round of delivery: every due delivery attempted once; their new statuses."""
        now = now or utcnow()
        outcomes = []
        for claim in claim_due(self.db, "test-worker", now=now):
            status = attempt_delivery(
                self.db, claim, allow_private=True, schedule=SCHEDULE, now=now
            )
            outcomes.append(str(status))
        return outcomes

    def refunds(self, now: datetime | None = None) -> int:
        return process_due_refunds(self.db, self.registry, now=now)

    def run_to_quiescence(self, start: datetime | None = None, rounds: int = 30) -> datetime:
        """Deliver and refund, moving the clock past every retry, until nothing is due."""
        now = start or utcnow()
        for _ in range(rounds):
            if not self.deliver(now) and not self.refunds(now) and not self.due(now):
                return now
            now += timedelta(seconds=3)
        raise AssertionError("deliveries and refunds did not quiesce")

    def due(self, now: datetime) -> bool:
        """Anything still to do at ``now`` or later (pending deliveries, requested refunds)."""
        with self.db.transaction() as tx:
            pending = tx.scalars(select(Delivery.id).where(Delivery.status == "pending")).first()
            requested = tx.scalars(select(Refund.id).where(Refund.status == "requested")).first()
        return pending is not None or requested is not None

    def sandbox_payment(self, provider_payment_id: str) -> dict[str, Any]:
        response = requests.get(
            f"{self.sandbox_url}/api/payments/{provider_payment_id}",
            headers={"Authorization": f"Bearer {API_KEY}"},
            timeout=5,
        )
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    def checkout(self, checkout_id: str) -> Checkout:
        with self.db.transaction() as tx:
            checkout = tx.get(Checkout, checkout_id)
            assert checkout is not None
            return checkout

    def refund_rows(self, checkout_id: str | None = None) -> list[Refund]:
        with self.db.transaction() as tx:
            query = select(Refund).order_by(Refund.created_at)
            if checkout_id is not None:
                query = query.where(Refund.checkout_id == checkout_id)
            return list(tx.scalars(query))

    def events(self, checkout_id: str) -> list[tuple[CallbackEvent, Delivery]]:
        with self.db.transaction() as tx:
            rows = tx.execute(
                select(CallbackEvent, Delivery)
                .join(Delivery, Delivery.seq == CallbackEvent.seq)
                .where(CallbackEvent.checkout_id == checkout_id)
                .order_by(CallbackEvent.seq)
            ).all()
            return [(event, delivery) for event, delivery in rows]


@pytest.fixture
def world(
    db: Database,
    receiver: PathReceiver,
    platform: MerchantCredentials,
    provider: RecordingProvider,
    registry: ProviderRegistry,
    sandbox_url: str,
    sink: Sink,
) -> World:
    return World(db, receiver, platform, provider, registry, sandbox_url, sink.url)
