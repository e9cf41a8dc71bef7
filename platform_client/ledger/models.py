"""The ledger's tables: events, tiers, reservations (holds), registrations, payments, callbacks.

The tables live on their own ``LedgerBase`` (own MetaData, own naming convention, ``ledger_``
names) so a platform can keep them beside its own tables. ``create_schema`` is for tests and the
reference platform; a real platform puts these tables into its own Alembic migrations
(``LedgerBase.metadata`` is the autogenerate target to add).
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    DateTime,
    Engine,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_urlsafe(18)}"


class LedgerBase(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend (SQLite stores no zone of its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; use datetime.now(UTC)")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class ReservationStatus(StrEnum):
    PENDING_PAYMENT = "pending_payment"  # holds a seat until expires_at
    CONFIRMED = "confirmed"  # paid; its registration exists
    EXPIRED = "expired"  # the hold ran out (callback or sweeper); seat returned
    CANCELED = "canceled"  # the checkout was canceled; seat returned
    # The checkout failed or could not be created, or another hold of the buyer was paid; the
    # seat was given back.
    RELEASED = "released"


#: Statuses that no longer hold a seat; a late payment may revive them if a seat is free.
RELEASED_STATUSES = frozenset(
    {ReservationStatus.EXPIRED, ReservationStatus.CANCELED, ReservationStatus.RELEASED}
)

_PENDING = text("status = 'pending_payment'")
_STATUSES = ", ".join(f"'{status.value}'" for status in ReservationStatus)


class Event(LedgerBase):
    __tablename__ = "ledger_events"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    starts_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Tier(LedgerBase):
    """A ticket type of an event. ``taken`` counts live holds and confirmed registrations."""

    __tablename__ = "ledger_tiers"
    __table_args__ = (
        CheckConstraint("taken >= 0 AND taken <= capacity", name="taken_within_capacity"),
        CheckConstraint("price >= 0", name="price_not_negative"),
        CheckConstraint("capacity >= 0", name="capacity_not_negative"),
    )

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    event_id: Mapped[str] = mapped_column(ForeignKey("ledger_events.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    price: Mapped[int] = mapped_column(BigInteger)  # minor units; 0 is a free tier
    currency: Mapped[str] = mapped_column(String(3))
    capacity: Mapped[int] = mapped_column(Integer)
    taken: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    valid_from: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    valid_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    question: Mapped[str | None] = mapped_column(String(500), nullable=True)


class Reservation(LedgerBase):
    """A seat held for one buyer while they pay; its fields are the snapshot the checkout and
    the registration are made from."""

    __tablename__ = "ledger_reservations"
    __table_args__ = (
        # One live hold per user and event: a concurrent double submit fails on this index.
        Index(
            "uq_ledger_reservations_pending_user_event", "user_id", "event_id",
            unique=True, postgresql_where=_PENDING, sqlite_where=_PENDING,
        ),
        # The sweeper reads pending holds by deadline.
        Index(
            "ix_ledger_reservations_pending_expires_at", "expires_at",
            postgresql_where=_PENDING, sqlite_where=_PENDING,
        ),
        CheckConstraint(f"status IN ({_STATUSES})", name="status_known"),
    )  # fmt: skip

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(128))
    event_id: Mapped[str] = mapped_column(ForeignKey("ledger_events.id"))
    tier_id: Mapped[str] = mapped_column(ForeignKey("ledger_tiers.id"), index=True)
    status: Mapped[ReservationStatus] = mapped_column(String(20))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    provider: Mapped[str] = mapped_column(String(32))
    order_name: Mapped[str] = mapped_column(String(200))
    answers: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    email: Mapped[str | None] = mapped_column(String(254), nullable=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    checkout_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    checkout_url: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Registration(LedgerBase):
    """A confirmed place: a free tier's at once, a paid tier's only from a verified callback."""

    __tablename__ = "ledger_registrations"
    __table_args__ = (UniqueConstraint("user_id", "event_id"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(128))
    event_id: Mapped[str] = mapped_column(ForeignKey("ledger_events.id"))
    tier_id: Mapped[str] = mapped_column(ForeignKey("ledger_tiers.id"), index=True)
    reservation_id: Mapped[str | None] = mapped_column(
        ForeignKey("ledger_reservations.id"), nullable=True, unique=True
    )
    answers: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PaymentRecord(LedgerBase):
    """The payment behind a paid registration; one per checkout."""

    __tablename__ = "ledger_payment_records"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    checkout_id: Mapped[str] = mapped_column(String(64), unique=True)
    reservation_id: Mapped[str] = mapped_column(ForeignKey("ledger_reservations.id"), index=True)
    payment_id: Mapped[str] = mapped_column(String(128))
    provider: Mapped[str] = mapped_column(String(32))
    tx_id: Mapped[str | None] = mapped_column(String(256), nullable=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    paid_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ProcessedCallback(LedgerBase):
    """A handled ``webhook-id``, written in the transaction of its effect."""

    __tablename__ = "ledger_processed_callbacks"

    webhook_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    type: Mapped[str | None] = mapped_column(String(64), nullable=True)
    processed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


def create_schema(engine: Engine) -> None:
    """Create the ledger's tables if missing (tests, the reference platform). A platform in
    production adds ``LedgerBase.metadata`` to its own Alembic migrations instead."""
    LedgerBase.metadata.create_all(engine)
