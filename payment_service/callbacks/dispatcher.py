"""Delivery of callback events: claim due deliveries under a lease, send them, record outcomes.

Any number of workers share the outbox. A claim is a short transaction that leases rows
(`FOR UPDATE SKIP LOCKED` on PostgreSQL; SQLite's single writer serialises claims anyway);
the attempt itself runs outside any transaction; only the lease owner may record its result.
A worker that dies mid-attempt leaves a lease that runs out, and another worker takes over.
"""

from __future__ import annotations

import json
import random
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import CursorResult, Select, func, literal_column, or_, select, update
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.elements import ColumnElement

from payment_service.callbacks.models import (
    CallbackEvent,
    Delivery,
    DeliveryAttempt,
    DeliveryStatus,
)
from payment_service.callbacks.sender import SEND_TIMEOUT, AttemptResult, Outgoing, send
from payment_service.db import Database, utcnow
from payment_service.merchants.models import Merchant
from payment_service.payments.refunds import platform_rejection_reason, request_refund
from shared_contracts.events import EventType, encode_body

__all__ = ["AttemptResult", "Claim", "attempt_delivery", "claim_due", "record_result", "send"]

log = structlog.get_logger(__name__)

# Longer than one attempt can take, so a live worker never loses its claim mid-attempt.
LEASE_SECONDS = 60
CLAIM_LIMIT = 32
REJECTED_CODES = frozenset({409, 410, 422})  # CONTRACT §8: final, never retried
JITTER = 0.10
# A literal, not a bound parameter, so that SQLite can match the partial indexes' predicate.
_PENDING: ColumnElement[str] = literal_column("'pending'")


@dataclass(frozen=True)
class Claim:
    """A leased delivery and everything needed to attempt it, read in the claiming transaction."""

    delivery_id: int
    worker_id: str
    attempts: int  # attempts made before this one
    checkout_id: str
    reservation_id: str | None
    event_type: str
    outgoing: Outgoing

    @property
    def event_id(self) -> str:
        return self.outgoing.event_id


def due_deliveries(now: datetime, limit: int) -> Select[int]:
    """Pending, due, unleased (or lease run out) deliveries whose checkout has no earlier
    pending one, soonest first; locked rows are skipped so concurrent claims never overlap."""
    # "No earlier pending delivery" as the checkout's first pending seq: a correlated scalar
    # subquery, which PostgreSQL runs as one index lookup per candidate whatever its
    # statistics say. (As NOT EXISTS, a table not yet analysed after a burst of events got a
    # plan that scanned every pending row per candidate: 320 ms per claim at 600 pending.)
    earlier = aliased(Delivery)
    first_pending = (
        select(func.min(earlier.seq))
        .where(earlier.checkout_id == Delivery.checkout_id, earlier.status == _PENDING)
        .scalar_subquery()
    )
    return (
        select(Delivery.id)
        .where(
            Delivery.status == _PENDING,
            Delivery.next_attempt_at <= now,
            or_(Delivery.lease_expires_at.is_(None), Delivery.lease_expires_at <= now),
            Delivery.seq == first_pending,
        )
        .order_by(Delivery.next_attempt_at)  # the partial index order: the scan stops at the limit
        .limit(limit)
        .with_for_update(skip_locked=True, of=Delivery)
    )


def claim_due(
    db: Database,
    worker_id: str,
    *,
    limit: int = CLAIM_LIMIT,
    lease_seconds: float = LEASE_SECONDS,
    now: datetime | None = None,
) -> list[Claim]:
    """Lease up to ``limit`` due deliveries to ``worker_id`` in one short transaction."""
    now = now or utcnow()
    with db.transaction() as session:
        ids = list(session.scalars(due_deliveries(now, limit)))
        if not ids:
            return []
        session.execute(
            update(Delivery)
            .where(Delivery.id.in_(ids))
            .values(lease_owner=worker_id, lease_expires_at=now + timedelta(seconds=lease_seconds))
            .execution_options(synchronize_session=False)
        )
        rows = session.execute(
            select(Delivery.id, Delivery.attempts, CallbackEvent)
            .join(CallbackEvent, CallbackEvent.seq == Delivery.seq)
            .where(Delivery.id.in_(ids))
            .order_by(Delivery.next_attempt_at, Delivery.seq)
        ).all()
        secrets = _active_secrets(session, {event.merchant_id for _, _, event in rows}, now)
        return [
            Claim(
                delivery_id=delivery_id,
                worker_id=worker_id,
                attempts=attempts,
                checkout_id=event.checkout_id,
                reservation_id=(event.payload.get("data") or {}).get("reservationId"),
                event_type=event.type,
                outgoing=Outgoing(
                    event_id=event.id,
                    callback_url=event.callback_url,
                    request_id=event.request_id,
                    body=encode_body(event.payload),
                    secrets=secrets[event.merchant_id],
                ),
            )
            for delivery_id, attempts, event in rows
        ]


def _active_secrets(
    session: Session, merchant_ids: set[str], now: datetime
) -> dict[str, tuple[str, ...]]:
    merchants = session.scalars(select(Merchant).where(Merchant.id.in_(merchant_ids)))
    return {m.id: tuple(m.active_secrets(now)) for m in merchants}


def classify(
    status_code: int | None, attempts: int, schedule: Sequence[int], now: datetime
) -> tuple[DeliveryStatus, datetime | None]:
    """(new status, next attempt time) after ``attempts`` attempts, the last answered so.

    ``schedule[n]`` is the delay before attempt n+1 (its first entry, normally 0, is the first
    attempt): after n failed attempts the next waits ``schedule[n]`` ± 10 %; none left: dead.
    """
    if status_code is not None and 200 <= status_code < 300:
        return DeliveryStatus.DELIVERED, None
    if status_code in REJECTED_CODES:
        return DeliveryStatus.REJECTED, None
    if attempts >= len(schedule):
        return DeliveryStatus.DEAD, None
    delay = schedule[attempts] * random.uniform(1 - JITTER, 1 + JITTER)
    return DeliveryStatus.PENDING, now + timedelta(seconds=delay)


def record_result(
    db: Database,
    claim: Claim,
    result: AttemptResult,
    schedule: Sequence[int],
    *,
    now: datetime | None = None,
) -> DeliveryStatus | None:
    """Write the attempt and the delivery's new state, and release the lease; None (nothing
    written) when this worker no longer holds the lease: the new holder's attempt counts."""
    now = now or utcnow()
    attempts = claim.attempts + 1
    status, next_attempt_at = classify(result.status_code, attempts, schedule, now)
    values: dict[str, Any] = {
        "status": status,
        "attempts": attempts,
        "lease_owner": None,
        "lease_expires_at": None,
        "last_status_code": result.status_code,
        "last_error": result.error,
    }
    if next_attempt_at is not None:
        values["next_attempt_at"] = next_attempt_at
    if status == DeliveryStatus.DELIVERED:
        values["delivered_at"] = now
    with db.transaction() as session:
        updated = session.execute(
            update(Delivery)
            .where(
                Delivery.id == claim.delivery_id,
                Delivery.lease_owner == claim.worker_id,
                Delivery.attempts == claim.attempts,
                Delivery.status == DeliveryStatus.PENDING,
            )
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        owned = isinstance(updated, CursorResult) and updated.rowcount == 1
        if owned:
            session.add(
                DeliveryAttempt(
                    delivery_id=claim.delivery_id,
                    number=attempts,
                    worker_id=claim.worker_id,
                    started_at=result.started_at,
                    duration_ms=result.duration_ms,
                    status_code=result.status_code,
                    error=result.error,
                    response_excerpt=result.response_excerpt,
                )
            )
            if status == DeliveryStatus.REJECTED:
                _on_rejected(session, claim, result)
    log.info(
        "callback.attempt",
        eventId=claim.event_id,
        eventType=claim.event_type,
        checkoutId=claim.checkout_id,
        reservationId=claim.reservation_id,
        deliveryId=claim.delivery_id,
        attempt=attempts,
        statusCode=result.status_code,
        duration_ms=result.duration_ms,
        error=result.error,
        outcome=status.value if owned else "lease_lost",
    )
    return status if owned else None


def _on_rejected(session: Session, claim: Claim, result: AttemptResult) -> None:
    """The platform refused the event for good; runs in the transaction that records it.

    A rejected ticket_payment.paid starts a refund of that payment (CONTRACT §8): the refund
    request is written here, in this transaction, so it cannot be lost; the refund job then
    calls the provider (with its own idempotency key and retries), moves the checkout to
    `refunded` and records ticket_payment.refunded.
    """
    if claim.event_type != EventType.PAID:
        return
    reason = platform_rejection_reason(result.response_excerpt)
    log.warning(
        "callback.paid_rejected", eventId=claim.event_id, checkoutId=claim.checkout_id,
        statusCode=result.status_code, reason=reason,
    )  # fmt: skip
    try:
        payment_id = json.loads(claim.outgoing.body)["data"]["paymentId"]
    except (ValueError, TypeError, KeyError):
        payment_id = None
    request_refund(
        session, claim.checkout_id, reason, claim.outgoing.request_id,
        payment_id=payment_id if isinstance(payment_id, str) else None,
    )  # fmt: skip


def attempt_delivery(
    db: Database,
    claim: Claim,
    *,
    allow_private: bool,
    schedule: Sequence[int],
    timeout: float = SEND_TIMEOUT,
    resolve: Callable[..., list[Any]] = socket.getaddrinfo,
    now: datetime | None = None,
) -> DeliveryStatus | None:
    """Send one claimed delivery and record what happened."""
    result = send(claim.outgoing, allow_private=allow_private, timeout=timeout, resolve=resolve)
    return record_result(db, claim, result, schedule, now=now)
