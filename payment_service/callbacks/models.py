"""Callback tables: the outbox of events, one delivery per event, and every attempt made."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from payment_service.db import Base, UTCDateTime, utcnow

# SQLite only auto-increments a column declared INTEGER PRIMARY KEY.
SequenceId = BigInteger().with_variant(Integer(), "sqlite")

_PENDING = text("status = 'pending'")


class DeliveryStatus(StrEnum):
    PENDING = "pending"  # waiting for its next attempt (or in flight, under a lease)
    DELIVERED = "delivered"  # the platform answered 2xx
    REJECTED = "rejected"  # 409/410/422 with an error body: final, never retried
    DEAD = "dead"  # the retry schedule ran out; an operator or the merchant may replay it


class CallbackEvent(Base):
    __tablename__ = "callback_events"
    __table_args__ = (Index("ix_callback_events_checkout_id_seq", "checkout_id", "seq"),)

    # The write order: deliveries for one checkout go out in this order.
    seq: Mapped[int] = mapped_column(SequenceId, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(40), unique=True)  # evt_…, the webhook-id
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"), index=True)
    checkout_id: Mapped[str] = mapped_column(ForeignKey("checkouts.id"))
    type: Mapped[str] = mapped_column(String(40))
    # The full body as it will be signed and sent: {"type", "timestamp", "data"}.
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    callback_url: Mapped[str] = mapped_column(String(2048))
    request_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Delivery(Base):
    """The delivery state of one event; written with the event, updated by the dispatcher."""

    __tablename__ = "deliveries"
    __table_args__ = (
        # The dispatcher's question "what is due?" reads only pending rows, soonest first.
        Index("ix_deliveries_pending_next_attempt_at", "next_attempt_at",
              postgresql_where=_PENDING, sqlite_where=_PENDING),
        # ... and "does this checkout have an earlier event still pending?" (write order).
        Index("ix_deliveries_pending_checkout_id_seq", "checkout_id", "seq",
              postgresql_where=_PENDING, sqlite_where=_PENDING),
    )  # fmt: skip

    id: Mapped[int] = mapped_column(SequenceId, primary_key=True, autoincrement=True)
    # The event's write order, and the foreign key to it: one delivery per event.
    seq: Mapped[int] = mapped_column(SequenceId, ForeignKey("callback_events.seq"), unique=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"), index=True)
    checkout_id: Mapped[str] = mapped_column(ForeignKey("checkouts.id"))
    status: Mapped[DeliveryStatus] = mapped_column(String(16), default=DeliveryStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # A worker holds a delivery while it attempts it; an expired lease is free to take again.
    lease_owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    event: Mapped[CallbackEvent] = relationship()


class DeliveryAttempt(Base):
    """One POST to the platform and what came of it."""

    __tablename__ = "delivery_attempts"
    __table_args__ = (UniqueConstraint("delivery_id", "number"),)

    id: Mapped[int] = mapped_column(SequenceId, primary_key=True, autoincrement=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("deliveries.id"))
    number: Mapped[int] = mapped_column(Integer)  # 1 for the first attempt
    worker_id: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    duration_ms: Mapped[int] = mapped_column(Integer)
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    # The first 2 KiB of the response body, decoded leniently: enough to see why it failed.
    response_excerpt: Mapped[str | None] = mapped_column(Text, nullable=True)
