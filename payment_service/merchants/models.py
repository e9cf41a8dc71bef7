"""Merchant tables: merchants, their hashed API keys and their callback signing secrets."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from payment_service.db import Base, UTCDateTime, utcnow


class Merchant(Base):
    __tablename__ = "merchants"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    callback_origins: Mapped[list[str]] = mapped_column(JSON)
    redirect_origins: Mapped[list[str]] = mapped_column(JSON)
    allow_http: Mapped[bool] = mapped_column(Boolean, default=False)
    default_provider: Mapped[str] = mapped_column(String(32), default="sandbox")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    secrets: Mapped[list[SigningSecret]] = relationship(
        back_populates="merchant", order_by="SigningSecret.created_at", lazy="selectin"
    )

    def active_secrets(self, now: datetime | None = None) -> list[str]:
        """Newest first: every secret that still signs callbacks (two during a rotation)."""
        now = now or utcnow()
        live = [s for s in self.secrets if s.expires_at is None or s.expires_at > now]
        return [s.secret for s in sorted(live, key=lambda s: s.created_at, reverse=True)]


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"), index=True)
    # SHA-256 of the key: keys carry 256 random bits, so a fast hash is enough to make a
    # leaked table useless, and it lets us find a key by an index lookup.
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    merchant: Mapped[Merchant] = relationship(lazy="joined")


class SigningSecret(Base):
    __tablename__ = "signing_secrets"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"), index=True)
    # Stored as is: we must sign with it. It never leaves the service except at creation.
    secret: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    merchant: Mapped[Merchant] = relationship(back_populates="secrets")
