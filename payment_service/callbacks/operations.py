"""Operator and merchant tools for callbacks: list events and deliveries, replay a delivery,
and send a signed sample event to a receiver (`payment-service callbacks send-test`).

Replaying never creates a new event: the same row goes back to `pending`, due now, with its
attempts kept, so the platform sees the same `webhook-id` (and can treat it as a repeat).
A replayed delivery that was dead has used up its retry schedule: it gets one attempt, and is
dead again if that fails.
"""

from __future__ import annotations

import secrets
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import CursorResult, select, text, update
from sqlalchemy.orm import Session

from payment_service.callbacks.models import (
    CallbackEvent,
    Delivery,
    DeliveryAttempt,
    DeliveryStatus,
)
from payment_service.callbacks.outbox import WAKE_CHANNEL
from payment_service.callbacks.sender import AttemptResult, Outgoing, send
from payment_service.checkouts.models import Checkout
from payment_service.db import Database, utcnow
from payment_service.merchants.models import Merchant
from payment_service.safeurls import check_url
from shared_contracts.checkouts import CheckoutStatus
from shared_contracts.events import (
    MAX_LISTED_ATTEMPTS,
    REQUIRED_DATA_FIELDS,
    EventType,
    encode_body,
    event_body,
    isoformat_z,
)

REPLAYABLE = frozenset({DeliveryStatus.DEAD, DeliveryStatus.REJECTED})
TEST_EVENT_PREFIX = "evt_test_"


class UnknownEvent(LookupError):
    """No such event (for a merchant: none of theirs)."""


class NotReplayable(Exception):
    """The delivery is in a state that replaying must not change."""


@dataclass(frozen=True)
class EventView:
    """One event with its delivery and its most recent attempts, read in one transaction."""

    event: CallbackEvent
    delivery: Delivery
    recent_attempts: list[DeliveryAttempt]


@dataclass(frozen=True)
class Replayed:
    view: EventView
    previous_status: DeliveryStatus
    changed: bool  # False: it was already pending, nothing was done


# --- reading ---------------------------------------------------------------------------------


def _views(session: Session, rows: Sequence[tuple[CallbackEvent, Delivery]]) -> list[EventView]:
    by_delivery: dict[int, list[DeliveryAttempt]] = {delivery.id: [] for _, delivery in rows}
    if by_delivery:
        attempts = session.scalars(
            select(DeliveryAttempt)
            .where(DeliveryAttempt.delivery_id.in_(by_delivery))
            .order_by(DeliveryAttempt.delivery_id, DeliveryAttempt.number)
        )
        for attempt in attempts:
            by_delivery[attempt.delivery_id].append(attempt)
    return [
        EventView(event, delivery, by_delivery[delivery.id][-MAX_LISTED_ATTEMPTS:])
        for event, delivery in rows
    ]


def _event_and_delivery() -> Any:
    return select(CallbackEvent, Delivery).join(Delivery, Delivery.seq == CallbackEvent.seq)


def checkout_events(db: Database, merchant_id: str, checkout_id: str) -> list[EventView]:
    """The merchant's events about one checkout, in write order; none for another's checkout."""
    with db.transaction() as session:
        rows = session.execute(
            _event_and_delivery()
            .where(CallbackEvent.merchant_id == merchant_id)
            .where(CallbackEvent.checkout_id == checkout_id)
            .order_by(CallbackEvent.seq)
        ).all()
        return _views(session, [(e, d) for e, d in rows])


def get_event(db: Database, event_id: str, *, merchant_id: str | None = None) -> EventView:
    """One event; with ``merchant_id``, only that merchant's. Raises UnknownEvent."""
    with db.transaction() as session:
        return _get_event(session, event_id, merchant_id)


def _get_event(session: Session, event_id: str, merchant_id: str | None) -> EventView:
    query = _event_and_delivery().where(CallbackEvent.id == event_id)
    if merchant_id is not None:
        query = query.where(CallbackEvent.merchant_id == merchant_id)
    row = session.execute(query).one_or_none()
    if row is None:
        raise UnknownEvent(f"no event {event_id}")
    return _views(session, [(row[0], row[1])])[0]


def list_deliveries(
    db: Database,
    *,
    status: DeliveryStatus | None = None,
    checkout_id: str | None = None,
    limit: int = 50,
) -> list[EventView]:
    """Deliveries for operators, newest first (attempts are not loaded: only the summary)."""
    with db.transaction() as session:
        query = _event_and_delivery().order_by(CallbackEvent.seq.desc()).limit(limit)
        if status is not None:
            query = query.where(Delivery.status == status.value)
        if checkout_id is not None:
            query = query.where(Delivery.checkout_id == checkout_id)
        return [EventView(e, d, []) for e, d in session.execute(query).all()]


# --- replaying -------------------------------------------------------------------------------


def replay(
    db: Database,
    event_id: str,
    *,
    merchant_id: str | None = None,
    force: bool = False,
    now: datetime | None = None,
) -> Replayed:
    """Put a dead or rejected delivery (a delivered one too: merchants always, operators with
    ``force``) back to pending, due now, attempts kept, lease cleared; a pending one is left
    as it is. Raises UnknownEvent, or NotReplayable for a delivered one without ``force``
    and for a ``ticket_payment.paid`` whose payment is refunded or being refunded (the
    platform said no; sending it again would register a buyer whose money is going back).
    """
    now = now or utcnow()
    with db.transaction() as session:
        found = _get_event(session, event_id, merchant_id)
        previous = DeliveryStatus(found.delivery.status)
        if previous == DeliveryStatus.PENDING:
            return Replayed(found, previous, changed=False)
        if previous == DeliveryStatus.DELIVERED and not force:
            raise NotReplayable(f"{event_id} was delivered; replay it again with --force")
        if found.event.type == EventType.PAID:
            checkout = session.get(Checkout, found.event.checkout_id)
            if previous == DeliveryStatus.REJECTED or (
                checkout is not None and checkout.status != CheckoutStatus.PAID
            ):
                raise NotReplayable(
                    f"{event_id} is a ticket_payment.paid the platform rejected or whose "
                    "payment was refunded; it is not sent again"
                )
        updated = session.execute(
            update(Delivery)
            .where(Delivery.id == found.delivery.id, Delivery.status == previous.value)
            .values(status=DeliveryStatus.PENDING, next_attempt_at=now, lease_owner=None,
                    lease_expires_at=None, delivered_at=None)
            .execution_options(synchronize_session=False)
        )  # fmt: skip
        changed = isinstance(updated, CursorResult) and updated.rowcount == 1
        if changed and session.get_bind().dialect.name == "postgresql":
            session.execute(text(f"SELECT pg_notify('{WAKE_CHANNEL}', '')"))  # wake at commit
        session.expire_all()
        return Replayed(_get_event(session, event_id, merchant_id), previous, changed)


# --- sending a sample ------------------------------------------------------------------------

_SAMPLE_DATA: dict[str, object] = {
    "checkoutId": "chk_test_0000000000000000",
    "reservationId": "res_test_123",
    "eventId": "evt_42",
    "tierId": "tier_7",
    "amount": 30000,
    "currency": "KRW",
    "metadata": {"test": "true"},
    "paymentId": "pay_test_0000000000000000",
    "provider": "sandbox",
    "txId": "sbtx_test_0000",
    "attempt": 1,
    "maxAttempts": 3,
    "reason": "card_declined",
    "refundId": "ref_test_0000000000000000",
}


def sample_body(event_type: EventType, now: datetime | None = None) -> dict[str, object]:
    """A body of that type with every data field a real one carries, set to sample values:
    the required fields, and `late` (false) in a paid one, as payments.services sends it."""
    now = now or utcnow()
    samples = {**_SAMPLE_DATA, "paidAt": isoformat_z(now)}
    if event_type == EventType.REFUNDED:
        samples["reason"] = "rejected_by_platform"
    data = {name: samples[name] for name in sorted(REQUIRED_DATA_FIELDS[event_type])}
    if event_type == EventType.PAID:
        data["late"] = False
    return event_body(event_type, data, now)


class SendTestRefused(Exception):
    """The URL is not on the merchant's callback allowlist, or the merchant does not exist."""


@dataclass(frozen=True)
class SentTest:
    event_id: str
    body: bytes
    result: AttemptResult

    @property
    def ok(self) -> bool:
        return self.result.status_code is not None and 200 <= self.result.status_code < 300


def send_test(
    db: Database,
    merchant_id: str,
    url: str,
    event_type: EventType,
    *,
    allow_private: bool,
    timeout: float | None = None,
    resolve: Callable[..., list[Any]] = socket.getaddrinfo,
) -> SentTest:
    """Sign a sample event with the merchant's active secrets and POST it once, now, exactly as
    the worker would (same sender, same SSRF checks); nothing is stored."""
    with db.transaction() as session:
        merchant = session.get(Merchant, merchant_id)
        if merchant is None:
            raise SendTestRefused(f"no merchant {merchant_id}")
        try:
            check_url(
                url, allowed_origins=merchant.callback_origins, allow_http=merchant.allow_http
            )
        except ValueError as exc:  # UrlNotAllowed is a ValueError
            raise SendTestRefused(f"{url} is refused: {exc}") from None
        active = tuple(merchant.active_secrets())
    event_id = TEST_EVENT_PREFIX + secrets.token_urlsafe(15)
    body = encode_body(sample_body(event_type))
    outgoing = Outgoing(event_id=event_id, callback_url=url,
                        request_id=f"req_test_{secrets.token_hex(8)}", body=body, secrets=active)  # fmt: skip
    extra: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
    result = send(outgoing, allow_private=allow_private, resolve=resolve, **extra)
    return SentTest(event_id, body, result)
