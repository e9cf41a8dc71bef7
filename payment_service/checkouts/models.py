"""The checkouts table: one row per request to be paid, with its status and URLs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from payment_service.db import Base, UTCDateTime, utcnow
from shared_contracts.checkouts import CheckoutStatus

LIVE_STATUSES = (CheckoutStatus.OPEN, CheckoutStatus.PAID)
# A checkout paid late (after it left `open`) no longer holds its reservation in the index: the
# platform may already have made the next checkout, and the late money must still be recorded.
_LIVE = text("status = 'open' OR (status = 'paid' AND NOT late)")
_OPEN = text("status = 'open'")
_UNSETTLED_SESSION = text("provider_session_id IS NOT NULL AND provider_session_settled_at IS NULL")


class Checkout(Base):
    __tablename__ = "checkouts"
    __table_args__ = (
        # One live checkout per reservation; the race loser's INSERT fails on this index.
        # Creation itself also refuses while a late-paid checkout exists (LIVE_STATUSES).
        Index(
            "uq_checkouts_live_reservation", "merchant_id", "reservation_id",
            unique=True, postgresql_where=_LIVE, sqlite_where=_LIVE,
        ),
        Index("ix_checkouts_merchant_reservation", "merchant_id", "reservation_id", "created_at"),
        # The expiry sweep reads only open checkouts, oldest deadline first.
        Index("ix_checkouts_open_expires_at", "expires_at", postgresql_where=_OPEN, sqlite_where=_OPEN),
        # The sweep also reads the sessions it has still to settle, least recently touched first.
        Index(
            "ix_checkouts_unsettled_session_updated_at", "updated_at", "id",
            postgresql_where=_UNSETTLED_SESSION, sqlite_where=_UNSETTLED_SESSION,
        ),
    )  # fmt: skip

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    reservation_id: Mapped[str] = mapped_column(String(128))
    event_id: Mapped[str] = mapped_column(String(128))
    tier_id: Mapped[str] = mapped_column(String(128))
    order_name: Mapped[str] = mapped_column(String(200))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    customer: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    success_url: Mapped[str] = mapped_column(String(2048))
    cancel_url: Mapped[str] = mapped_column(String(2048))
    callback_url: Mapped[str] = mapped_column(String(2048))
    provider: Mapped[str] = mapped_column(String(32))
    payment_method_family: Mapped[str | None] = mapped_column(String(32), nullable=True)
    status: Mapped[CheckoutStatus] = mapped_column(String(16), default=CheckoutStatus.OPEN)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Paid after it had left `open` (expired or canceled): money was taken, the platform decides.
    late: Mapped[bool] = mapped_column(Boolean, default=False)
    metadata_: Mapped[dict[str, str]] = mapped_column("metadata", JSON, default=dict)
    request_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    # The provider's hosted session, created lazily when the buyer presses pay, reused after.
    provider_session_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    provider_session_url: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    # When we knew the session could take no payment we have not recorded (closed, looked up,
    # unknown to the provider, or paid): until then the sweep asks the provider about it.
    provider_session_settled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    def effective_status(self, now: datetime | None = None) -> CheckoutStatus:
        """What a reader is told: an open checkout past its deadline is expired, even before
        the sweep has written it so."""
        if self.status == CheckoutStatus.OPEN and self.expires_at <= (now or utcnow()):
            return CheckoutStatus.EXPIRED
        return CheckoutStatus(self.status)
