"""The expiry sweep: open checkouts past their deadline become expired, with their event."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import structlog
from sqlalchemy import select

from payment_service.callbacks.outbox import record_event
from payment_service.checkouts.models import Checkout
from payment_service.checkouts.states import Outcome, next_status
from payment_service.db import Database, utcnow
from payment_service.logging import new_request_id
from payment_service.providers.base import ProviderError
from payment_service.providers.registry import ProviderRegistry
from shared_contracts.checkouts import CheckoutStatus
from shared_contracts.events import EventType

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Expired:
    checkout_id: str
    reservation_id: str
    provider: str
    provider_session_id: str | None
    request_id: str  # the expiry's own (no request caused it): on its callback and log lines


def expire_due(db: Database, *, now: datetime | None = None, limit: int = 200) -> list[Expired]:
    """Expire up to `limit` overdue open checkouts in one transaction. Rows another worker
    holds are skipped (SKIP LOCKED on PostgreSQL; SQLite has a single writer anyway).

    No request caused an expiry, so each gets a request id of its own (CONTRACT §4, §8): its
    callback carries it in `X-Request-ID` and the sweep's line for that checkout logs it."""
    now = now or utcnow()
    expired: list[Expired] = []
    with db.transaction() as session:
        due = session.scalars(
            select(Checkout)
            .where(Checkout.status == CheckoutStatus.OPEN, Checkout.expires_at <= now)
            .order_by(Checkout.expires_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).all()
        for checkout in due:
            checkout.status = next_status(checkout.status, Outcome.DEADLINE) or checkout.status
            checkout.closed_at = now
            request_id = new_request_id()
            record_event(session, checkout, EventType.EXPIRED, request_id=request_id)
            expired.append(
                Expired(checkout.id, checkout.reservation_id, checkout.provider,
                        checkout.provider_session_id, request_id)
            )  # fmt: skip
            log.info(
                "checkout.expired", checkoutId=checkout.id, reservationId=checkout.reservation_id,
                requestId=request_id,
            )  # fmt: skip
    return expired


def close_provider_sessions(registry: ProviderRegistry, expired: list[Expired]) -> None:
    """Best effort: a session we could not close also expires at the provider by itself (it was
    opened with the checkout's deadline), and a payment that still lands is a late payment."""
    for item in expired:
        if item.provider_session_id is None or item.provider not in registry:
            continue
        try:
            registry.get(item.provider).expire_session(item.provider_session_id)
        except ProviderError as exc:
            log.warning(
                "checkout.provider_session_not_closed", checkoutId=item.checkout_id,
                reservationId=item.reservation_id, requestId=item.request_id, error=str(exc),
            )  # fmt: skip


def sweep(db: Database, registry: ProviderRegistry, *, now: datetime | None = None) -> int:
    expired = expire_due(db, now=now)
    close_provider_sessions(registry, expired)
    return len(expired)
