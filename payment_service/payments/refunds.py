"""Refunds of captured payments: requested in the transaction that decides them, then worked
through by a job that calls the provider and retries until the money is back.

A refund is a row before it is a provider call, so a crash between the decision (the platform
rejected `ticket_payment.paid`) and the call loses nothing. The job claims due refunds in a
short transaction (`FOR UPDATE SKIP LOCKED` on PostgreSQL) and leases them by pushing their
next attempt past the longest provider call, calls the provider outside any transaction under
the idempotency key `refund:{id}` (the same key on every retry, so the money moves once), then
records the outcome: success (the provider reports the refund succeeded, for the whole
payment) refunds the payment and the checkout and writes `ticket_payment.refunded`; an
unavailable provider, and a refund it reports pending, failed or for another amount, are
retried on a backoff, forever; a refusal is final and logged at ERROR for an operator.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy import literal_column, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from payment_service.callbacks.outbox import record_event
from payment_service.checkouts.models import Checkout
from payment_service.checkouts.states import Outcome, next_status
from payment_service.db import Database, utcnow
from payment_service.ids import new_id
from payment_service.payments.models import Payment, Refund, RefundStatus
from payment_service.providers.base import ProviderRefund, ProviderRejected, ProviderUnavailable
from payment_service.providers.registry import ProviderRegistry
from shared_contracts.checkouts import CheckoutStatus
from shared_contracts.errors import error_code_of
from shared_contracts.events import EventType

__all__ = [
    "DUPLICATE_CAPTURE",
    "PLATFORM_REJECTED",
    "RefundClaim",
    "backoff",
    "platform_rejection_reason",
    "process_due_refunds",
    "request_refund",
]

log = structlog.get_logger(__name__)

PLATFORM_REJECTED = "platform_rejected"
# A second capture for a checkout that already has its payment: refunded, and the checkout,
# which keeps its first payment and its ticket, does not change.
DUPLICATE_CAPTURE = "duplicate_capture"
# A capture of another amount or currency than the checkout's: refunded, never applied.
AMOUNT_MISMATCH = "amount_mismatch"
# Refunds of captures that were never the checkout's payment: the checkout keeps its own (or
# stays unpaid), GET never names them, and the platform hears nothing of their refund.
NEVER_APPLIED = (DUPLICATE_CAPTURE, AMOUNT_MISMATCH)
# Delay before the next call after n failed calls: 5 s, 30 s, 5 min, 30 min, then every hour.
BACKOFF_SECONDS = (5, 30, 300, 1800, 3600)
# After this many failed calls every further failure is logged as refund.needs_attention.
NEEDS_ATTENTION_AFTER = 5
CLAIM_LIMIT = 8
# Longer than a provider call can take (the sandbox adapter: 3 s connect + 10 s read), so a
# live job never loses its claim mid-call; a job that died leaves a claim that runs out.
LEASE_SECONDS = 60
_ERROR_CODE = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
# A literal, not a bound parameter, so that SQLite can match the partial index's predicate.
_REQUESTED: ColumnElement[str] = literal_column("'requested'")


def backoff(failed_calls: int) -> timedelta:
    """The wait after ``failed_calls`` failed provider calls (1 or more)."""
    return timedelta(seconds=BACKOFF_SECONDS[min(failed_calls, len(BACKOFF_SECONDS)) - 1])


def platform_rejection_reason(response_excerpt: str | None) -> str:
    """``platform_rejected``, plus ``:<code>`` when the platform's answer is a CONTRACT §3 error
    body (``{"error": {"code": …}}``) whose code looks like a code."""
    code = error_code_of(response_excerpt)
    if code is not None and _ERROR_CODE.fullmatch(code):
        return f"{PLATFORM_REJECTED}:{code}"
    return PLATFORM_REJECTED


def request_refund(
    session: Session,
    checkout_id: str,
    reason: str,
    request_id: str | None,
    *,
    payment_id: str | None = None,
    now: datetime | None = None,
) -> Refund | None:
    """Write a `requested` refund of the checkout's captured payment (``payment_id`` if it is
    one of the checkout's, else the earliest captured one), due now, in the caller's transaction. Idempotent: a payment that
    already has a refund gets that one back. None when there is no captured payment."""
    now = now or utcnow()
    payment = session.get(Payment, payment_id) if payment_id is not None else None
    if payment is None or payment.checkout_id != checkout_id:
        payment = session.scalars(
            select(Payment)
            .where(Payment.checkout_id == checkout_id, Payment.status != "declined")
            .order_by(Payment.occurred_at, Payment.created_at)
            .limit(1)
        ).first()
    if payment is None or payment.status == "declined":
        log.error(
            "refund.no_captured_payment",
            checkoutId=checkout_id,
            paymentId=payment_id,
            reason=reason,
        )
        return None
    existing = _refund_of(session, payment.id)
    if existing is not None:
        return existing
    refund = Refund(
        id=new_id("rfd"), payment_id=payment.id, checkout_id=checkout_id,
        merchant_id=payment.merchant_id, provider=payment.provider, amount=payment.amount,
        currency=payment.currency, reason=reason[:200], status=RefundStatus.REQUESTED,
        attempts=0, next_attempt_at=now, request_id=request_id, created_at=now,
    )  # fmt: skip
    try:
        with session.begin_nested():  # a concurrent request for this payment fails here alone
            session.add(refund)
    except IntegrityError:
        existing = _refund_of(session, payment.id)
        if existing is None:
            raise
        return existing
    log.warning(
        "refund.requested", refundId=refund.id, checkoutId=checkout_id, paymentId=payment.id,
        amount=payment.amount, currency=payment.currency, reason=refund.reason,
    )  # fmt: skip
    return refund


def _refund_of(session: Session, payment_id: str) -> Refund | None:
    return session.scalars(select(Refund).where(Refund.payment_id == payment_id)).first()


@dataclass(frozen=True)
class RefundClaim:
    """A leased refund and what the provider call needs, read in the claiming transaction."""

    refund_id: str
    checkout_id: str
    payment_id: str
    provider: str
    provider_payment_id: str
    reservation_id: str
    amount: int
    currency: str
    reason: str
    attempts: int  # failed calls before this one

    @property
    def idempotency_key(self) -> str:
        return f"refund:{self.refund_id}"


def claim_due_refunds(
    db: Database, *, now: datetime, limit: int = CLAIM_LIMIT, lease_seconds: float = LEASE_SECONDS
) -> list[RefundClaim]:
    """Lease up to ``limit`` due requested refunds in one short transaction; locked rows are
    skipped, so concurrent jobs never take the same refund."""
    with db.transaction() as session:
        ids = list(
            session.scalars(
                select(Refund.id)
                .where(Refund.status == _REQUESTED, Refund.next_attempt_at <= now)
                .order_by(Refund.next_attempt_at, Refund.created_at)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        )
        if not ids:
            return []
        session.execute(
            update(Refund)
            .where(Refund.id.in_(ids))
            .values(next_attempt_at=now + timedelta(seconds=lease_seconds))
            .execution_options(synchronize_session=False)
        )
        rows = session.execute(
            select(Refund, Payment.provider_payment_id, Checkout.reservation_id)
            .join(Payment, Payment.id == Refund.payment_id)
            .join(Checkout, Checkout.id == Refund.checkout_id)
            .where(Refund.id.in_(ids))
            .order_by(Refund.created_at)
        ).all()
        return [
            RefundClaim(
                refund_id=refund.id,
                checkout_id=refund.checkout_id,
                payment_id=refund.payment_id,
                provider=refund.provider,
                provider_payment_id=provider_payment_id,
                reservation_id=reservation_id,
                amount=refund.amount,
                currency=refund.currency,
                reason=refund.reason,
                attempts=refund.attempts,
            )
            for refund, provider_payment_id, reservation_id in rows
        ]


def process_due_refunds(
    db: Database,
    registry: ProviderRegistry,
    *,
    now: datetime | None = None,
    limit: int = CLAIM_LIMIT,
) -> int:
    """Claim due refunds, ask their providers to refund, record each outcome; the number of
    refunds worked on. A provider found unavailable is not called again in this round: its
    other claimed refunds are put back, due after the first backoff step, without counting."""
    now = now or utcnow()
    claims = claim_due_refunds(db, now=now, limit=limit)
    down: set[str] = set()
    for claim in claims:
        # Every line about this refund names its checkout and reservation (CONTRACT §4: one
        # grep by reservation id follows a payment to its refund).
        with structlog.contextvars.bound_contextvars(
            checkoutId=claim.checkout_id, reservationId=claim.reservation_id
        ):
            _process(db, registry, claim, down, now)
    return len(claims)


def _process(
    db: Database, registry: ProviderRegistry, claim: RefundClaim, down: set[str], now: datetime
) -> None:
    if claim.provider in down:
        _postpone(db, claim, now + backoff(1))
        return
    try:
        provider = registry.get(claim.provider)
        refunded = provider.refund(
            claim.provider_payment_id,
            claim.amount,
            idempotency_key=claim.idempotency_key,
            reason=claim.reason,
        )
    except ProviderRejected as exc:
        _failed(db, claim, str(exc), now)
    except ProviderUnavailable as exc:
        down.add(claim.provider)
        _retry_later(db, claim, str(exc), now)
    except KeyError:
        _retry_later(db, claim, f"provider {claim.provider!r} is not configured", now)
    except Exception as exc:  # a bug or a surprise: the money still has to come back
        log.exception("refund.call_failed", refundId=claim.refund_id)
        _retry_later(db, claim, f"{type(exc).__name__}: {exc}", now)
    else:
        if _returns_the_payment(claim, refunded):
            _succeeded(db, claim, refunded, now)
        else:  # the money is not back (yet): the same key asks about the same refund again
            _retry_later(db, claim, _not_returned(claim, refunded), now)


def _returns_the_payment(claim: RefundClaim, refunded: ProviderRefund) -> bool:
    """The provider reports the refund done, for the whole amount (a pending or failed one is
    an answer too, and so is one for another amount: none of them is the money back)."""
    return refunded.succeeded and (refunded.amount, refunded.currency) == (
        claim.amount, claim.currency,
    )  # fmt: skip


def _not_returned(claim: RefundClaim, refunded: ProviderRefund) -> str:
    state = "succeeded" if refunded.succeeded else "not succeeded (pending or failed)"
    return (
        f"provider refund {refunded.refund_id} is {state} for {refunded.amount} "
        f"{refunded.currency}, the payment is {claim.amount} {claim.currency}"
    )


def _succeeded(db: Database, claim: RefundClaim, refunded: ProviderRefund, now: datetime) -> None:
    with db.transaction() as session:
        refund = session.get(Refund, claim.refund_id, with_for_update=True, populate_existing=True)
        if refund is None or refund.status != RefundStatus.REQUESTED:
            return  # another job recorded it first (same key: the same provider refund)
        checkout = session.get(
            Checkout, claim.checkout_id, with_for_update=True, populate_existing=True
        )
        payment = session.get(Payment, claim.payment_id, with_for_update=True)
        assert checkout is not None and payment is not None  # foreign keys
        refund.status = RefundStatus.SUCCEEDED
        refund.provider_refund_id = refunded.refund_id
        refund.completed_at = now
        refund.last_error = None
        payment.status = "refunded"
        if refund.reason not in NEVER_APPLIED:
            _refund_checkout(session, checkout, payment, refund, now)
    log.info(
        "refund.succeeded", refundId=claim.refund_id, checkoutId=claim.checkout_id,
        paymentId=claim.payment_id, providerRefundId=refunded.refund_id, amount=claim.amount,
        attempt=claim.attempts + 1, reason=claim.reason,
    )  # fmt: skip


def _refund_checkout(
    session: Session, checkout: Checkout, payment: Payment, refund: Refund, now: datetime
) -> None:
    """The checkout's payment is back with the buyer: move the checkout to refunded and tell
    the platform with ``ticket_payment.refunded``."""
    current = CheckoutStatus(checkout.status)
    target = next_status(current, Outcome.REFUND)
    if target is None:
        # Not reachable for a captured payment (its checkout is paid or refunded), but the
        # money is back either way: record it and tell an operator.
        log.error(
            "refund.unexpected_checkout_status", refundId=refund.id,
            checkoutId=checkout.id, status=current.value,
        )  # fmt: skip
    elif target != current:
        checkout.status = target
        checkout.closed_at = checkout.closed_at or now
    record_event(
        session, checkout, EventType.REFUNDED,
        {"paymentId": payment.id, "refundId": refund.id, "reason": refund.reason},
        request_id=refund.request_id,
    )  # fmt: skip


def _retry_later(db: Database, claim: RefundClaim, error: str, now: datetime) -> None:
    attempts = claim.attempts + 1
    next_attempt_at = now + backoff(attempts)
    with db.transaction() as session:
        session.execute(
            update(Refund)
            .where(
                Refund.id == claim.refund_id,
                Refund.status == RefundStatus.REQUESTED,
                Refund.attempts == claim.attempts,
            )
            .values(attempts=attempts, next_attempt_at=next_attempt_at, last_error=error[:500])
            .execution_options(synchronize_session=False)
        )
    fields = {
        "refundId": claim.refund_id, "checkoutId": claim.checkout_id,
        "paymentId": claim.payment_id, "attempt": attempts, "error": error,
        "nextAttemptAt": next_attempt_at.isoformat(),
    }  # fmt: skip
    log.warning("refund.retry", **fields)
    if attempts >= NEEDS_ATTENTION_AFTER:
        log.error("refund.needs_attention", **fields)


def _postpone(db: Database, claim: RefundClaim, until: datetime) -> None:
    with db.transaction() as session:
        session.execute(
            update(Refund)
            .where(Refund.id == claim.refund_id, Refund.status == RefundStatus.REQUESTED)
            .values(next_attempt_at=until)
            .execution_options(synchronize_session=False)
        )


def _failed(db: Database, claim: RefundClaim, error: str, now: datetime) -> None:
    with db.transaction() as session:
        session.execute(
            update(Refund)
            .where(Refund.id == claim.refund_id, Refund.status == RefundStatus.REQUESTED)
            .values(
                status=RefundStatus.FAILED,
                attempts=claim.attempts + 1,
                last_error=error[:500],
                completed_at=now,
            )
            .execution_options(synchronize_session=False)
        )
    log.error(
        "refund.failed", refundId=claim.refund_id, checkoutId=claim.checkout_id,
        paymentId=claim.payment_id, amount=claim.amount, error=error,
    )  # fmt: skip


def list_refunds(
    db: Database, *, status: RefundStatus | None = None, limit: int = 50
) -> list[Refund]:
    """Refunds for operators, newest first; `failed` ones need a person (the provider refused)."""
    query = select(Refund).order_by(Refund.created_at.desc()).limit(limit)
    if status is not None:
        query = query.where(Refund.status == status)
    with db.transaction() as session:
        return list(session.scalars(query))
