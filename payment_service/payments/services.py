"""Apply what a provider says to a checkout: one code path for webhooks and buyer returns."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from payment_service.callbacks.outbox import record_event
from payment_service.checkouts.models import Checkout
from payment_service.checkouts.states import Outcome, decline_outcome, is_late, next_status
from payment_service.db import Database, utcnow
from payment_service.ids import new_id
from payment_service.payments.models import Payment, ProviderEventRecord
from payment_service.payments.refunds import AMOUNT_MISMATCH, DUPLICATE_CAPTURE, request_refund
from payment_service.providers.base import PaymentStatus, ProviderEvent, ProviderPayment
from shared_contracts.checkouts import CheckoutStatus
from shared_contracts.events import EventType, isoformat_z

log = structlog.get_logger(__name__)


def apply_payment(
    session: Session,
    provider: str,
    payment: ProviderPayment,
    *,
    max_attempts: int,
    request_id: str | None,
) -> Checkout | None:
    """Record one provider payment attempt and move its checkout through the state table,
    under the checkout's row lock. An attempt already recorded is a no-op, so duplicates and
    the webhook-vs-return race change nothing. Returns the checkout (None if unknown)."""
    if payment.reference is None:
        return None
    checkout = session.get(
        Checkout, payment.reference, with_for_update=True, populate_existing=True
    )
    if checkout is None or checkout.provider != provider:
        log.warning(
            "payment.unknown_checkout", provider=provider, providerPaymentId=payment.payment_id
        )
        return None
    structlog.contextvars.bind_contextvars(
        checkoutId=checkout.id, reservationId=checkout.reservation_id
    )
    already = session.scalars(
        select(Payment.id).where(
            Payment.provider == provider, Payment.provider_payment_id == payment.payment_id
        )
    ).first()
    if already is not None:
        return checkout
    # A checkout past its deadline that the sweep has not reached yet is already expired.
    current = checkout.effective_status(payment.occurred_at)
    if payment.status == PaymentStatus.SUCCEEDED:
        outcome = Outcome.SUCCEEDED
    else:
        outcome = decline_outcome(checkout.attempts, max_attempts)
    target = next_status(current, outcome)
    recorded = Payment(
        id=new_id("pay"), checkout_id=checkout.id, merchant_id=checkout.merchant_id, provider=provider,
        provider_payment_id=payment.payment_id, provider_session_id=payment.session_id,
        status=payment.status.value, amount=payment.amount, currency=payment.currency, tx_id=payment.tx_id,
        decline_code=payment.decline_code, occurred_at=payment.occurred_at,
    )  # fmt: skip
    session.add(recorded)
    if outcome == Outcome.SUCCEEDED:
        _captured(session, checkout, current, recorded, payment, request_id)
    elif current == CheckoutStatus.OPEN and target is not None:
        _declined(session, checkout, target, payment, max_attempts, request_id)
    session.flush()
    return checkout


def _captured(
    session: Session, checkout: Checkout, current: CheckoutStatus, recorded: Payment,
    payment: ProviderPayment, request_id: str | None,
) -> None:  # fmt: skip
    """A succeeded attempt (``recorded`` is its Payment row, not flushed yet)."""
    if (payment.amount, payment.currency) != (checkout.amount, checkout.currency):
        # Not the price of this ticket: applying it would confirm an order for the wrong money.
        # The checkout stays as it is (the buyer may still pay the right amount); this goes back.
        _refund_unapplied(session, checkout, recorded, AMOUNT_MISMATCH, request_id)
        return
    if current in (CheckoutStatus.PAID, CheckoutStatus.REFUNDED):
        # A second capture for one checkout (two tabs, two sessions): money taken twice for one
        # ticket. The checkout keeps its first payment; this one goes back to the buyer.
        _refund_unapplied(session, checkout, recorded, DUPLICATE_CAPTURE, request_id)
        return
    checkout.late = is_late(current, Outcome.SUCCEEDED)
    checkout.status = CheckoutStatus.PAID
    checkout.paid_at = payment.occurred_at
    checkout.closed_at = checkout.closed_at or utcnow()
    if checkout.provider_session_id in (None, payment.session_id):
        # Its session is complete, so it can take no other payment: the sweep need not ask.
        # (None: the webhook came before start_payment stored the session, the same one.)
        checkout.provider_session_settled_at = checkout.provider_session_settled_at or utcnow()
    record_event(
        session, checkout, EventType.PAID,
        {"paymentId": recorded.id, "provider": recorded.provider, "txId": payment.tx_id,
         "paidAt": isoformat_z(payment.occurred_at), "late": checkout.late},
        request_id=request_id,
    )  # fmt: skip
    log.info("checkout.paid", late=checkout.late, paymentId=recorded.id)


def _refund_unapplied(
    session: Session, checkout: Checkout, captured: Payment, reason: str, request_id: str | None
) -> None:
    """Request the refund of a capture recorded but not applied to the checkout; logged at
    ERROR as ``payment.<reason>`` (payment.amount_mismatch, payment.duplicate_capture)."""
    session.flush()  # request_refund reads the payment back
    log.error(
        f"payment.{reason}", providerPaymentId=captured.provider_payment_id, paymentId=captured.id,
        amount=captured.amount, currency=captured.currency,
        expectedAmount=checkout.amount, expectedCurrency=checkout.currency,
    )  # fmt: skip
    request_refund(session, checkout.id, reason, request_id, payment_id=captured.id)


def _declined(
    session: Session, checkout: Checkout, target: CheckoutStatus, payment: ProviderPayment,
    max_attempts: int, request_id: str | None,
) -> None:  # fmt: skip
    checkout.attempts += 1
    checkout.status = target
    if target == CheckoutStatus.FAILED:
        checkout.closed_at = utcnow()
    record_event(
        session, checkout, EventType.FAILED,
        {"attempt": checkout.attempts, "maxAttempts": max_attempts, "reason": payment.decline_code or "declined"},
        request_id=request_id,
    )  # fmt: skip
    log.info("checkout.declined", attempt=checkout.attempts, status=target.value)


def record_provider_event(
    db: Database, provider: str, event: ProviderEvent, *, max_attempts: int, request_id: str | None
) -> bool:
    """Store a verified webhook once and apply it. Returns False for a repeat (already stored),
    which the caller answers 200 like the first."""
    try:
        with db.transaction() as session:
            checkout_id = event.payment.reference if event.payment else None
            session.add(
                ProviderEventRecord(
                    provider=provider, provider_event_id=event.event_id, kind=event.kind.value,
                    checkout_id=checkout_id, payload=_jsonable(asdict(event)), request_id=request_id,
                )
            )  # fmt: skip
            session.flush()  # a concurrent copy of this event fails here and rolls back whole
            if event.payment is not None:
                apply_payment(
                    session,
                    provider,
                    event.payment,
                    max_attempts=max_attempts,
                    request_id=request_id,
                )
    except IntegrityError:
        if not _event_stored(db, provider, event.event_id):
            raise  # not the duplicate-event guard: a real fault
        return False
    return True


def _event_stored(db: Database, provider: str, event_id: str) -> bool:
    with db.transaction() as session:
        return (
            session.scalars(
                select(ProviderEventRecord.id).where(
                    ProviderEventRecord.provider == provider,
                    ProviderEventRecord.provider_event_id == event_id,
                )
            ).first()
            is not None
        )


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value
