"""Checkout use cases: create, read, find by reservation and cancel. Each owns its transaction."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import (
    Insert,
    bindparam,
    exists,
    literal_column,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from payment_service.callbacks.outbox import record_event
from payment_service.checkouts.models import LIVE_STATUSES, Checkout
from payment_service.db import Database, utcnow
from payment_service.errors import (
    CheckoutExists,
    InvalidState,
    NotFound,
    UrlNotAllowed,
    ValidationFailed,
)
from payment_service.ids import new_id
from payment_service.merchants.models import Merchant
from payment_service.rawsql import Statement, Tx
from payment_service.safeurls import CachedResolver, check_callback_url, check_url
from payment_service.safeurls import UrlNotAllowed as UrlRefused
from shared_contracts.checkouts import CheckoutStatus
from shared_contracts.events import EventType

DEFAULT_TTL = timedelta(minutes=15)
MIN_TTL = timedelta(seconds=60)
MAX_TTL = timedelta(hours=24)

_CHECKOUTS = Checkout.__table__
# Attribute name -> column key where they differ (`metadata` is taken on declarative classes).
_COLUMN_KEYS = {"metadata_": "metadata"}
_ATTRIBUTES = tuple(Checkout.__mapper__.column_attrs.keys())


def _insert_checkout(dialect: str) -> Insert:
    """INSERT an open checkout unless the reservation has a live one: checked in the same
    statement (which SQLite's single writer makes atomic) and, for concurrent transactions on
    PostgreSQL, by the partial unique index (ON CONFLICT DO NOTHING: the loser inserts nothing)."""
    columns = list(_CHECKOUTS.columns)  # type: ignore[attr-defined]
    values = {column.key: bindparam(column.key, type_=column.type) for column in columns}
    live = select(literal_column("1")).where(
        Checkout.merchant_id == values["merchant_id"],
        Checkout.reservation_id == values["reservation_id"],
        Checkout.status.in_([literal_column(f"'{status.value}'") for status in LIVE_STATUSES]),
    )
    rows = select(*values.values()).where(~exists(live))
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return insert(_CHECKOUTS).from_select(list(values), rows).on_conflict_do_nothing()


_INSERT_CHECKOUT = Statement(_insert_checkout)


@dataclass(frozen=True)
class CheckoutPolicy:
    """What the deployment allows: its providers and whether callbacks may be private."""

    providers: frozenset[str]
    allow_private_callbacks: bool
    resolve: Callable[..., list[Any]] = field(default_factory=CachedResolver)


def validate_request(
    merchant: Merchant, data: dict[str, Any], policy: CheckoutPolicy, now: datetime
) -> None:
    """Rules that need the merchant or the clock; raises ValidationFailed or UrlNotAllowed."""
    errors: dict[str, list[str]] = {}
    provider = data.get("provider") or merchant.default_provider
    if provider not in policy.providers:
        known = ", ".join(sorted(policy.providers)) or "none configured"
        errors["provider"] = [f"Unknown provider {provider!r}; available: {known}."]
    expires_at = data.get("expires_at")
    if expires_at is not None and not (now + MIN_TTL <= expires_at <= now + MAX_TTL):
        errors["expiresAt"] = ["Must be between 60 seconds and 24 hours from now."]
    if errors:
        raise ValidationFailed(details=errors)

    refused: dict[str, list[str]] = {}
    for wire_name, key in (("successUrl", "success_url"), ("cancelUrl", "cancel_url")):
        try:
            check_url(
                data[key], allowed_origins=merchant.redirect_origins, allow_http=merchant.allow_http
            )
        except UrlRefused as exc:
            refused[wire_name] = [str(exc)]
    try:
        if policy.allow_private_callbacks:  # nothing a lookup could refuse: no DNS on this path
            check_url(
                data["callback_url"],
                allowed_origins=merchant.callback_origins,
                allow_http=merchant.allow_http,
            )
        else:
            check_callback_url(
                data["callback_url"],
                allowed_origins=merchant.callback_origins,
                allow_http=merchant.allow_http,
                allow_private=False,
                resolve=policy.resolve,
                unresolved_ok=True,  # slow or failing DNS never blocks creation; checked again at connection time
            )
    except UrlRefused as exc:
        refused["callbackUrl"] = [str(exc)]
    if refused:
        raise UrlNotAllowed("A URL is not on this merchant's allowlist.", details=refused)


def new_checkout(
    merchant: Merchant, data: dict[str, Any], *, request_id: str | None, now: datetime
) -> Checkout:
    """The open checkout a create request describes, with a new id; transient (in no
    session), complete, and only read by the caller and `create_checkout`."""
    return Checkout(
        id=new_id("chk"),
        merchant_id=merchant.id,
        reservation_id=data["reservation_id"],
        event_id=data["event_id"],
        tier_id=data["tier_id"],
        order_name=data["order_name"],
        amount=data["amount"],
        currency=data["currency"],
        customer=_customer(data.get("customer")),
        success_url=data["success_url"],
        cancel_url=data["cancel_url"],
        callback_url=data["callback_url"],
        provider=data.get("provider") or merchant.default_provider,
        payment_method_family=_enum_value(data.get("payment_method_family")),
        status=CheckoutStatus.OPEN,
        attempts=0,
        late=False,
        metadata_=data.get("metadata") or {},
        request_id=request_id,
        provider_session_id=None,
        provider_session_url=None,
        expires_at=(data.get("expires_at") or now + DEFAULT_TTL).replace(microsecond=0),
        created_at=now,
        updated_at=now,
        paid_at=None,
        closed_at=None,
    )


def checkout_row(checkout: Checkout) -> dict[str, Any]:
    """Every column of the checkout, by column key (`metadata`, not `metadata_`)."""
    return {
        _COLUMN_KEYS.get(attribute, attribute): getattr(checkout, attribute)
        for attribute in _ATTRIBUTES
    }


def create_checkout(tx: Tx, checkout: Checkout) -> Checkout:
    """Insert a new open checkout in the caller's transaction (the idempotency record commits
    with it). Raises CheckoutExists when the reservation already has an open or paid checkout.

    The usual case is one statement, an INSERT that checks for a live checkout itself (see
    `_insert_checkout`). A concurrent insert of the same reservation makes it wait for that
    transaction; when that one commits, nothing is inserted here and the 409 names the winner.
    Only when nothing was inserted are models loaded: to expire an overdue checkout that still
    holds the reservation, and insert once more."""
    row = checkout_row(checkout)
    if not tx.execute(_INSERT_CHECKOUT, row):
        _free_reservation(
            tx.session, checkout.merchant_id, checkout.reservation_id, checkout.created_at,
            checkout.request_id,
        )  # fmt: skip
        if not tx.execute(_INSERT_CHECKOUT, row):  # taken again meanwhile
            winner = _live_checkout(tx.session, checkout.merchant_id, checkout.reservation_id)
            raise _exists(winner.id if winner else None)
    name_in_logs(checkout)
    return checkout


def name_in_logs(checkout: Checkout) -> None:
    """The request's log lines, its http.request line among them, name the checkout it made."""
    structlog.contextvars.bind_contextvars(
        checkoutId=checkout.id, reservationId=checkout.reservation_id
    )


def _free_reservation(
    session: Session, merchant_id: str, reservation_id: str, now: datetime, request_id: str | None
) -> None:
    """The reservation's live checkout blocked the insert: expire it if it is an open one past
    its deadline (the sweep may not have run yet), else raise CheckoutExists naming it.

    One whose buyer opened a provider session is left to the sweep (checkouts/expiry.py): only
    the provider can say whether that session was paid (its webhook may be lost), and asking it
    has no place in this transaction. The sweep settles it within a round or two; until then
    the reservation's new checkout is refused like any other."""
    existing = session.execute(
        select(
            Checkout.id,
            Checkout.status,
            Checkout.expires_at,
            Checkout.provider_session_id,
            Checkout.provider_session_settled_at,
        ).where(
            Checkout.merchant_id == merchant_id,
            Checkout.reservation_id == reservation_id,
            Checkout.status.in_(LIVE_STATUSES),
        )
    ).first()
    if existing is None:
        return  # it left `open`/`paid` meanwhile: the insert is tried again
    overdue = existing.status == CheckoutStatus.OPEN and existing.expires_at <= now
    unsettled = existing.provider_session_id is not None and (
        existing.provider_session_settled_at is None
    )
    if not overdue or unsettled:
        raise _exists(existing.id)
    locked = session.get(Checkout, existing.id, with_for_update=True, populate_existing=True)
    if locked is None or locked.effective_status(now) != CheckoutStatus.EXPIRED:
        raise _exists(existing.id)
    expire_overdue(session, locked, request_id=request_id)
    session.flush()  # the partial index must see it leave `open` before the new INSERT


def _exists(checkout_id: str | None) -> CheckoutExists:
    return CheckoutExists(details={"checkoutId": checkout_id} if checkout_id else {})


def _enum_value(value: Any) -> str | None:
    return None if value is None else str(value.value)


def _customer(customer: dict[str, Any] | None) -> dict[str, Any] | None:
    if not customer:
        return None
    return {k: v for k, v in customer.items() if v is not None}


def _live_checkout(session: Session, merchant_id: str, reservation_id: str) -> Checkout | None:
    return session.scalars(
        select(Checkout).where(
            Checkout.merchant_id == merchant_id,
            Checkout.reservation_id == reservation_id,
            Checkout.status.in_(LIVE_STATUSES),
        )
    ).first()


def expire_overdue(
    session: Session, checkout: Checkout, *, request_id: str | None, now: datetime | None = None
) -> None:
    """open -> expired, with its event; the caller holds the row lock. The expiry sweep and a
    create that finds the reservation held by an overdue checkout both come here."""
    checkout.status = CheckoutStatus.EXPIRED
    checkout.closed_at = now or utcnow()
    record_event(session, checkout, EventType.EXPIRED, request_id=request_id)


def get_checkout(db: Database, merchant_id: str, checkout_id: str) -> Checkout:
    """The merchant's checkout; another merchant's is NotFound, exactly like a missing one."""
    with db.transaction() as session:
        checkout = session.get(Checkout, checkout_id)
        if checkout is None or checkout.merchant_id != merchant_id:
            raise NotFound("No such checkout.")
        name_in_logs(checkout)
        return checkout


def find_checkouts(db: Database, merchant_id: str, reservation_id: str) -> list[Checkout]:
    """Every checkout of the merchant for this reservation, newest first."""
    with db.transaction() as session:
        return list(
            session.scalars(
                select(Checkout)
                .where(
                    Checkout.merchant_id == merchant_id, Checkout.reservation_id == reservation_id
                )
                .order_by(Checkout.created_at.desc(), Checkout.id)
            )
        )


def cancel_checkout(
    db: Database, merchant_id: str, checkout_id: str, *, request_id: str | None
) -> Checkout:
    """open -> canceled with a ticket_payment.canceled event; repeated cancels are no-ops.
    Raises NotFound, or InvalidState for a checkout that is paid, refunded, failed or expired."""
    with db.transaction() as session:
        checkout = session.get(Checkout, checkout_id, with_for_update=True)
        if checkout is None or checkout.merchant_id != merchant_id:
            raise NotFound("No such checkout.")
        name_in_logs(checkout)
        status = checkout.effective_status()
        if status == CheckoutStatus.CANCELED:
            return checkout
        if status != CheckoutStatus.OPEN:
            raise InvalidState(
                f"A checkout that is {status.value} cannot be canceled.",
                details={"status": status.value},
            )
        checkout.status = CheckoutStatus.CANCELED
        checkout.closed_at = utcnow()
        record_event(session, checkout, EventType.CANCELED, request_id=request_id)
        return checkout


def captured_payment(db: Database, checkout: Checkout) -> dict[str, Any] | None:
    """The payment that paid this checkout (the one its ticket_payment.paid names), in
    PaymentSchema's names; None while unpaid. Captures that were refunded without being applied
    (a second capture, a wrong amount) are never it, whenever the provider says they happened."""
    if checkout.status not in (CheckoutStatus.PAID, CheckoutStatus.REFUNDED):
        return None
    from payment_service.payments.models import Payment, Refund
    from payment_service.payments.refunds import NEVER_APPLIED

    not_applied = select(Refund.id).where(
        Refund.payment_id == Payment.id, Refund.reason.in_(NEVER_APPLIED)
    )
    with db.transaction() as session:
        payment = session.scalars(
            select(Payment)
            .where(
                Payment.checkout_id == checkout.id,
                Payment.status.in_(("succeeded", "refunded")),
                ~exists(not_applied),
            )
            .order_by(Payment.occurred_at)
        ).first()
    if payment is None:
        return None
    return {
        "payment_id": payment.id,
        "provider": payment.provider,
        "tx_id": payment.tx_id,
        "paid_at": payment.occurred_at,
    }
