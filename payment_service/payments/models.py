"""Payment attempts as providers report them, and every provider webhook received, once each."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, String
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
