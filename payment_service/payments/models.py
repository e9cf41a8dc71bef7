"""Payment attempts as providers report them, refunds of captured payments, and every provider
webhook received, once each."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from payment_service.callbacks.models import SequenceId
from payment_service.db import Base, UTCDateTime, utcnow


class Payment(Base):
    """One provider payment attempt for a checkout; declined attempts are rows too, so an
    attempt reported twice (by the webhook and by the buyer's return) counts once."""

    __tablename__ = "payments"
    __table_args__ = (
        Index("uq_payments_provider_payment", "provider", "provider_payment_id", unique=True),
        Index("ix_payments_checkout_id", "checkout_id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # pay_…
    checkout_id: Mapped[str] = mapped_column(ForeignKey("checkouts.id"))
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    provider: Mapped[str] = mapped_column(String(32))
    provider_payment_id: Mapped[str] = mapped_column(String(128))
    provider_session_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    status: Mapped[str] = mapped_column(String(16))  # succeeded | declined | refunded
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    tx_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    decline_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RefundStatus(StrEnum):
    REQUESTED = "requested"  # waiting for (another) call to the provider
    SUCCEEDED = "succeeded"  # the provider refunded it; the checkout is refunded
    FAILED = "failed"  # the provider refused it for good: an operator must look


_REQUESTED = text("status = 'requested'")


class Refund(Base):
    """A refund of one captured payment, written before the provider is called (so it cannot
    be lost) and worked through by the refund job; one per payment, so money is returned once."""

    __tablename__ = "refunds"
    __table_args__ = (
        Index("uq_refunds_payment_id", "payment_id", unique=True),
        Index("ix_refunds_checkout_id", "checkout_id"),
        # The job's question "what is due?" reads only requested rows, soonest first.
        Index("ix_refunds_requested_next_attempt_at", "next_attempt_at",
              postgresql_where=_REQUESTED, sqlite_where=_REQUESTED),
    )  # fmt: skip

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # rfd_…
    payment_id: Mapped[str] = mapped_column(ForeignKey("payments.id"))
    checkout_id: Mapped[str] = mapped_column(ForeignKey("checkouts.id"))
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    provider: Mapped[str] = mapped_column(String(32))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    reason: Mapped[str] = mapped_column(String(200))
    status: Mapped[RefundStatus] = mapped_column(String(16), default=RefundStatus.REQUESTED)
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # provider calls that failed
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    provider_refund_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    request_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ProviderEventRecord(Base):
    """Each verified provider webhook, stored once: a repeat is answered 200 and ignored."""

    __tablename__ = "provider_events"
    __table_args__ = (
        Index("uq_provider_events_provider_event", "provider", "provider_event_id", unique=True),
    )

    id: Mapped[int] = mapped_column(SequenceId, primary_key=True, autoincrement=True)
    provider: Mapped[str] = mapped_column(String(32))
    provider_event_id: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(40))
    checkout_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    request_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
