"""Merchant use cases: create a merchant, issue and resolve API keys, rotate signing secrets."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from payment_service.db import Database, utcnow
from payment_service.ids import new_id
from payment_service.merchants.models import ApiKey, Merchant, SigningSecret
from payment_service.safeurls import normalize_origin
from shared_contracts.signing import generate_secret

API_KEY_PREFIX = "sk_"
DEFAULT_ROTATION_GRACE = timedelta(hours=24)


@dataclass(frozen=True)
class NewMerchant:
    merchant_id: str
    api_key: str
    signing_secret: str


def hash_api_key(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


def create_merchant(
    db: Database,
    *,
    name: str,
    callback_origins: Iterable[str],
    redirect_origins: Iterable[str],
    allow_http: bool = False,
) -> NewMerchant:
    """Create a merchant with one API key and one signing secret; both are returned only here.

    Raises ValueError for an empty name or an origin that is not scheme://host[:port].
    """
    name = name.strip()
    if not name or len(name) > 200:
        raise ValueError("name must be 1 to 200 characters")
    callbacks = _origins(callback_origins, allow_http)
    redirects = _origins(redirect_origins, allow_http)
    api_key = API_KEY_PREFIX + secrets.token_urlsafe(32)
    signing_secret = generate_secret()
    with db.transaction() as session:
        merchant = Merchant(
            id=new_id("mer"),
            name=name,
            callback_origins=callbacks,
            redirect_origins=redirects,
            allow_http=allow_http,
        )
        session.add(merchant)
        session.add(
            ApiKey(
                id=new_id("key"),
                merchant=merchant,
                key_hash=hash_api_key(api_key),
                prefix=api_key[:10],
            )
        )
        session.add(SigningSecret(id=new_id("sec"), merchant=merchant, secret=signing_secret))
    return NewMerchant(merchant.id, api_key, signing_secret)


def _origins(values: Iterable[str], allow_http: bool) -> list[str]:
    origins = sorted({normalize_origin(value) for value in values})
    if not allow_http and any(origin.startswith("http://") for origin in origins):
        raise ValueError("http origins need --allow-http")
    return origins


def authenticate(session: Session, api_key: str) -> Merchant | None:
    """The merchant owning this key, or None. The comparison of hashes is constant-time."""
    if not api_key.startswith(API_KEY_PREFIX) or len(api_key) > 200:
        return None
    presented = hash_api_key(api_key)
    key = session.scalars(
        select(ApiKey).where(ApiKey.key_hash == presented, ApiKey.revoked_at.is_(None))
    ).one_or_none()
    if key is None or not hmac.compare_digest(key.key_hash, presented):
        return None
    return key.merchant


def rotate_secret(
    db: Database, merchant_id: str, *, grace: timedelta = DEFAULT_ROTATION_GRACE
) -> tuple[str, list[tuple[str, datetime | None]]]:
    """Add a new signing secret; every older live secret expires after `grace`.

    Returns the new secret and all active secrets with their expiry, newest first.
    Raises LookupError for an unknown merchant.
    """
    now = utcnow()
    with db.transaction() as session:
        merchant = session.get(Merchant, merchant_id, with_for_update=True)
        if merchant is None:
            raise LookupError(f"no merchant {merchant_id}")
        for old in merchant.secrets:
            if old.expires_at is None or old.expires_at > now + grace:
                old.expires_at = now + grace
        new_secret = generate_secret()
        session.add(SigningSecret(id=new_id("sec"), merchant=merchant, secret=new_secret,
                                  created_at=now))  # fmt: skip
        session.flush()
        session.refresh(merchant)
        active = [
            (s.secret, s.expires_at)
            for s in sorted(merchant.secrets, key=lambda s: s.created_at, reverse=True)
            if s.expires_at is None or s.expires_at > now
        ]
    return new_secret, active


def list_merchants(db: Database) -> list[Merchant]:
    with db.transaction() as session:
        return list(session.scalars(select(Merchant).order_by(Merchant.created_at)))


def get_merchant(db: Database, merchant_id: str) -> Merchant | None:
    with db.transaction() as session:
        return session.get(Merchant, merchant_id)
