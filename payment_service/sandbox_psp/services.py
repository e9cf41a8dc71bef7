"""The sandbox's session use cases: create, read, expire, pay; each call is one transaction."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from payment_service.sandbox_psp import schemas
from payment_service.sandbox_psp.errors import idempotency_error, invalid_state, not_found
from payment_service.sandbox_psp.models import CheckoutSession, Payment, Switches
from payment_service.sandbox_psp.runtime import Sandbox, UnitOfWork, new_id, utcnow
from payment_service.sandbox_psp.store import retry_once_on_conflict

OUTCOMES = ("succeeded", "declined")
DECLINE_CODE = "card_declined"
KEY_REUSED = "This Idempotency-Key was already used with different parameters."


@dataclass(frozen=True)
class PayResult:
    """What the hosted page does next: redirect the buyer, or show the expired page."""

    session: dict[str, Any]
    redirect_url: str | None  # None: the session expired and no payment was made


def create_session(
    sandbox: Sandbox, body: dict[str, Any], key: str | None, page_url: Callable[[str], str]
) -> tuple[dict[str, Any], bool]:
    """(session, created); with a known key, the stored session and created=False."""
    request_hash = schemas.fingerprint(body)

    def attempt() -> tuple[dict[str, Any], bool]:
        with sandbox.unit_of_work() as uow:
            if key is not None:
                existing = uow.db.scalar(
                    select(CheckoutSession).where(CheckoutSession.idempotency_key == key)
                )
                if existing is not None:
                    if existing.request_hash != request_hash:
                        raise idempotency_error(KEY_REUSED)
                    _expire_if_due(uow, existing)
                    return schemas.session_object(existing), False
            params = schemas.parse_session_request(body, utcnow())
            session_id = new_id("sbs")
            session = CheckoutSession(
                id=session_id,
                status="open",
                amount=params.amount,
                currency=params.currency,
                reference=params.reference,
                description=params.description,
                page_url=page_url(session_id),
                return_url=params.return_url,
                cancel_url=params.cancel_url,
                webhook_url=params.webhook_url,
                expires_at=params.expires_at,
                created_at=utcnow(),
                idempotency_key=key,
                request_hash=request_hash if key else None,
                payments=[],
            )
            uow.db.add(session)
            uow.db.flush()
            return schemas.session_object(session), True

    return retry_once_on_conflict(attempt)


def get_session(sandbox: Sandbox, session_id: str) -> dict[str, Any]:
    with sandbox.unit_of_work() as uow:
        session = _lock_session(uow.db, session_id)
        _expire_if_due(uow, session)
        return schemas.session_object(session)


def page_session(sandbox: Sandbox, session_id: str) -> dict[str, Any]:
    """The session as the hosted page shows it: the wire object plus where the buyer goes."""
    with sandbox.unit_of_work() as uow:
        session = _lock_session(uow.db, session_id)
        _expire_if_due(uow, session)
        return _page_object(session)


def expire_session(sandbox: Sandbox, session_id: str) -> dict[str, Any]:
    with sandbox.unit_of_work() as uow:
        session = _lock_session(uow.db, session_id)
        if session.status == "complete":
            raise invalid_state(f"Session {session_id} is complete; it can no longer expire.")
        if session.status == "open":
            _expire(uow, session)
        return schemas.session_object(session)


def expire_due_sessions(sandbox: Sandbox, limit: int = 100) -> int:
    """Expire open sessions past expiresAt (as a real PSP would, unasked); returns how many."""
    with sandbox.unit_of_work() as uow:
        due = uow.db.scalars(
            select(CheckoutSession)
            .where(CheckoutSession.status == "open", CheckoutSession.expires_at <= utcnow())
            .order_by(CheckoutSession.expires_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).all()
        for session in due:
            _expire(uow, session)
        return len(due)


def pay(sandbox: Sandbox, session_id: str, outcome: str) -> PayResult:
    """Record one payment attempt; ``nextOutcomes`` (a test switch) overrides the button."""
    with sandbox.unit_of_work() as uow:
        session = _lock_session(uow.db, session_id)
        _expire_if_due(uow, session)
        if session.status == "expired":
            return PayResult(_page_object(session), None)
        if session.status == "open":
            outcome = _take_forced_outcome(uow) or outcome
            succeeded = outcome == "succeeded"
            payment = Payment(
                id=new_id("sbp"),
                session=session,
                status=outcome,
                amount=session.amount,
                currency=session.currency,
                tx_id=new_id("sbtx") if succeeded else None,
                decline_code=None if succeeded else DECLINE_CODE,
                created_at=utcnow(),
                refunds=[],
            )
            uow.db.add(payment)
            if succeeded:
                session.status, session.payment_id = "complete", payment.id
            uow.db.flush()
            uow.emit(f"payment.{outcome}", schemas.payment_object(payment), session.webhook_url)
        return PayResult(_page_object(session), _return_url(session))


def _lock_session(db: Session, session_id: str) -> CheckoutSession:
    session = db.get(CheckoutSession, session_id, with_for_update=True)
    if session is None:
        raise not_found("session", session_id)
    return session


def find_payment(db: Session, payment_id: str, *, lock: bool) -> Payment:
    query = select(Payment).where(Payment.id == payment_id)
    payment = db.scalar(query.with_for_update() if lock else query)
    if payment is None:
        raise not_found("payment", payment_id)
    return payment


def _expire_if_due(uow: UnitOfWork, session: CheckoutSession) -> None:
    if session.status == "open" and session.expires_at <= utcnow():
        _expire(uow, session)


def _expire(uow: UnitOfWork, session: CheckoutSession) -> None:
    session.status = "expired"
    uow.db.flush()
    uow.emit("session.expired", schemas.session_object(session), session.webhook_url)


def _take_forced_outcome(uow: UnitOfWork) -> str | None:
    switches = uow.db.get(Switches, 1, with_for_update=True, populate_existing=True)
    assert switches is not None
    queued: list[str] = json.loads(switches.next_outcomes or "[]")
    if not queued:
        return None
    switches.next_outcomes = json.dumps(queued[1:])
    return queued[0]


def _page_object(session: CheckoutSession) -> dict[str, Any]:
    return {
        **schemas.session_object(session),
        "cancelUrl": session.cancel_url,
        "returnUrl": _return_url(session),
    }


def _return_url(session: CheckoutSession) -> str:
    """returnUrl with ``session_id`` appended, the existing query string kept byte for byte."""
    parts = urlsplit(session.return_url)
    extra = urlencode({"session_id": session.id})
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urlunsplit(parts._replace(query=query))
