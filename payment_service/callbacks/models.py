"""The callback outbox: every event for a platform, written in the transaction that caused it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from payment_service.db import Base, UTCDateTime, utcnow

# SQLite only auto-increments a column declared INTEGER PRIMARY KEY.
SequenceId = BigInteger().with_variant(Integer(), "sqlite")


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
