"""The expiry sweep: open checkouts past their deadline become expired, with their event; one
with a provider session only once its provider has closed it or told us how it was paid. The
session of a canceled or failed checkout is settled the same way; that checkout keeps its status."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from payment_service.checkouts.models import Checkout
from payment_service.checkouts.services import expire_overdue
from payment_service.db import Database, utcnow
from payment_service.logging import new_request_id
from payment_service.payments.services import apply_payment
from payment_service.providers.base import (
    PaymentProvider,
    ProviderNotFound,
    ProviderRejected,
    ProviderUnavailable,
)
from payment_service.providers.registry import ProviderRegistry
from payment_service.settings import Settings
from shared_contracts.checkouts import CheckoutStatus

log = structlog.get_logger(__name__)

# A checkout leaves `open` by the platform's cancel or its last declined attempt while its
# provider session stays payable until the session's own deadline; a payment made there whose
# webhook is lost would be money taken without a ticket, so the sweep settles these sessions too.
LEFT_OPEN_WITH_SESSION = (CheckoutStatus.CANCELED, CheckoutStatus.FAILED)
# Each checkout with a session to settle costs a provider call inside the worker's loop, so a
# round asks about a few only; the rest wait for the next round, a second later.
SESSIONS_PER_ROUND = 20
# A checkout whose session could not be settled for another reason than an unreachable
# provider (the provider refuses our credentials, a bug) is asked about again after this: not
# every round, which would log its error every second and keep it at the front of the line.
PAUSE_AFTER_REFUSAL = timedelta(minutes=5)


@dataclass(frozen=True)
class Expired:
    checkout_id: str
    reservation_id: str
    request_id: str  # the expiry's own (no request caused it): on its callback and log lines


@dataclass(frozen=True)
class UnsettledSession:
    """A checkout whose buyer opened a session at the provider that may still take a payment
    we have not recorded: an open checkout past its deadline, or a canceled or failed one."""

    checkout_id: str
    reservation_id: str
    provider: str
    session_id: str


def expire_due(
    db: Database,
    *,
    now: datetime | None = None,
    limit: int = 200,
    sessions_at: Collection[str] = (),
) -> list[Expired]:
    """Expire up to `limit` overdue open checkouts in one transaction, except those with an
    unsettled session at one of the providers `sessions_at` (the sweep asks those first). Rows
    another worker holds are skipped (SKIP LOCKED on PostgreSQL; SQLite has a single writer).

    No request caused an expiry, so each gets a request id of its own (CONTRACT §4, §8): its
    callback carries it in `X-Request-ID` and the sweep's line for that checkout logs it."""
    now = now or utcnow()
    query = select(Checkout).where(
        Checkout.status == CheckoutStatus.OPEN, Checkout.expires_at <= now
    )
    if sessions_at:
        query = query.where(
            or_(
                Checkout.provider_session_id.is_(None),
                Checkout.provider_session_settled_at.is_not(None),
                Checkout.provider.not_in(sessions_at),
            )
        )
    with db.transaction() as session:
        due = session.scalars(
            query.order_by(Checkout.expires_at).limit(limit).with_for_update(skip_locked=True)
        ).all()
        return [_expire(session, checkout, now, new_request_id()) for checkout in due]


def _expire(session: Session, checkout: Checkout, now: datetime, request_id: str) -> Expired:
    expire_overdue(session, checkout, request_id=request_id, now=now)
    log.info(
        "checkout.expired", checkoutId=checkout.id, reservationId=checkout.reservation_id,
        requestId=request_id,
    )  # fmt: skip
    return Expired(checkout.id, checkout.reservation_id, request_id)


def unsettled_sessions(
    db: Database, providers: Collection[str], *, now: datetime, limit: int = SESSIONS_PER_ROUND
) -> list[UnsettledSession]:
    """Checkouts with an unsettled session at one of `providers`, open ones past their deadline
    and canceled or failed ones, the one least recently touched first: a checkout whose provider
    did not answer goes to the back."""
    with db.transaction() as session:
        rows = session.execute(
            select(
                Checkout.id, Checkout.reservation_id, Checkout.provider,
                Checkout.provider_session_id,
            )
            .where(
                Checkout.provider_session_id.is_not(None),
                Checkout.provider_session_settled_at.is_(None),
                or_(
                    and_(Checkout.status == CheckoutStatus.OPEN, Checkout.expires_at <= now),
                    Checkout.status.in_(LEFT_OPEN_WITH_SESSION),
                ),
                Checkout.provider.in_(providers),
                Checkout.updated_at <= now,  # not one put off until later (_to_the_back)
            )
            .order_by(Checkout.updated_at, Checkout.id)
            .limit(limit)
        ).all()  # fmt: skip
    return [
        UnsettledSession(checkout_id, reservation_id, provider, session_id)
        for checkout_id, reservation_id, provider, session_id in rows
        if session_id is not None  # always (the query's condition), said again for the types
    ]


def settle_sessions(
    db: Database, registry: ProviderRegistry, *, now: datetime, max_attempts: int
) -> int:
    """Close each unsettled provider session (unsettled_sessions), mark it settled, and expire
    its checkout if that is still open; the number of checkouts settled so. A canceled or
    failed checkout keeps its status, unless the session's payment is found: then it is paid
    late, and the platform decides.

    A session the provider refuses to close was paid: its payment is recorded as the buyer's
    return would record it, since the webhook may have been lost and the buyer may never have
    come back. A checkout whose provider cannot be reached stays as it is (an open one is
    already read as expired) and goes to the back of the line: a later round asks again, so a
    payment taken at the session is never forgotten, and one session the provider cannot answer
    about does not hold up the others. A provider found unavailable is not called again in this
    round, so one that hangs costs one timeout per round, not one per session."""
    down: set[str] = set()
    settled = 0
    for item in unsettled_sessions(db, registry.names(), now=now):
        if item.provider in down:
            continue  # still unsettled: the next round asks again
        request_id = new_request_id()
        try:
            _close_or_record_payment(
                db, registry.get(item.provider), item, max_attempts, request_id
            )
        except ProviderUnavailable as exc:
            down.add(item.provider)
            _to_the_back(db, item.checkout_id, now)
            log.warning(
                "checkout.provider_session_not_closed", checkoutId=item.checkout_id,
                reservationId=item.reservation_id, requestId=request_id, error=str(exc),
            )  # fmt: skip
            continue
        except ProviderRejected as exc:  # e.g. 401/403: our credentials, so every session
            down.add(item.provider)
            _to_the_back(db, item.checkout_id, now + PAUSE_AFTER_REFUSAL)
            log.error(
                "checkout.provider_session_not_closed", checkoutId=item.checkout_id,
                reservationId=item.reservation_id, requestId=request_id, error=str(exc),
            )  # fmt: skip
            continue
        except Exception:  # a bug or a surprise: asked again later, never given up
            _to_the_back(db, item.checkout_id, now + PAUSE_AFTER_REFUSAL)
            log.exception(
                "checkout.provider_session_not_closed", checkoutId=item.checkout_id,
                reservationId=item.reservation_id, requestId=request_id,
            )  # fmt: skip
            continue
        settled += 1
        with db.transaction() as session:
            checkout = session.get(
                Checkout, item.checkout_id, with_for_update=True, populate_existing=True
            )
            if checkout is None:
                continue
            # Paid meanwhile (the payment found here, or its webhook): settled since then.
            checkout.provider_session_settled_at = checkout.provider_session_settled_at or now
            if checkout.status == CheckoutStatus.OPEN:
                _expire(session, checkout, now, request_id)
    return settled


def _to_the_back(db: Database, checkout_id: str, not_before: datetime) -> None:
    """Behind every other unsettled session, and not asked about before ``not_before``."""
    with db.transaction() as session:
        session.execute(
            update(Checkout)
            .where(Checkout.id == checkout_id, Checkout.provider_session_settled_at.is_(None))
            .values(updated_at=not_before)
        )


def _close_or_record_payment(
    db: Database, provider: PaymentProvider, item: UnsettledSession, max_attempts: int,
    request_id: str,
) -> None:  # fmt: skip
    """Raises ProviderUnavailable when the provider cannot say, ProviderRejected when it
    refuses to (only a session it does not know is settled without being closed or read)."""
    try:
        provider.expire_session(item.session_id)
        return  # closed: nothing can be paid there any more
    except ProviderRejected as exc:
        refusal = str(exc)  # a paid session cannot be closed (or the provider does not know it)
    try:
        truth = provider.retrieve_session(item.session_id)
    except ProviderNotFound as exc:
        log.error(
            "checkout.provider_session_unknown", checkoutId=item.checkout_id,
            reservationId=item.reservation_id, requestId=request_id, refusal=refusal,
            error=str(exc),
        )  # fmt: skip
        return  # nothing more can be learnt: settled, and an open checkout expires
    if truth.last_payment is None:
        return
    log.warning(
        "checkout.payment_found_at_expiry", checkoutId=item.checkout_id,
        reservationId=item.reservation_id, requestId=request_id,
        providerPaymentId=truth.last_payment.payment_id, status=truth.last_payment.status.value,
    )  # fmt: skip
    # Recorded as the buyer's return records it (checkouts/payflow.py). The logging context
    # names the sweep's request id for apply_payment's lines, and is restored after, since
    # apply_payment binds the checkout's ids there and the worker's later lines are not its.
    with (
        structlog.contextvars.bound_contextvars(
            requestId=request_id, checkoutId=item.checkout_id, reservationId=item.reservation_id
        ),
        db.transaction() as session,
    ):
        apply_payment(
            session, item.provider, truth.last_payment, max_attempts=max_attempts,
            request_id=request_id,
        )  # fmt: skip


def sweep(
    db: Database,
    registry: ProviderRegistry,
    *,
    now: datetime | None = None,
    max_attempts: int = Settings.max_payment_attempts,
) -> int:
    """One round: expire the overdue checkouts without a session to close, then settle the
    sessions (overdue, canceled and failed checkouts'); the number of checkouts dealt with."""
    now = now or utcnow()
    expired = expire_due(db, now=now, sessions_at=registry.names())
    return len(expired) + settle_sessions(db, registry, now=now, max_attempts=max_attempts)
