"""Checkout-page tokens: an itsdangerous signature bound to one checkout, expiring with it."""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import lru_cache

from itsdangerous import BadData, URLSafeSerializer

from payment_service.db import utcnow

_SALT = "checkout-page"
# After the deadline the link still opens for a while, to show the buyer "this checkout
# expired" instead of a bare refusal; paying is refused by the checkout's status, not the token.
STATUS_PAGE_GRACE = timedelta(hours=1)


@lru_cache(maxsize=8)
def _serializer(secret_key: str) -> URLSafeSerializer:
    """One per secret key (a serializer is immutable; building one derives its signing key)."""
    return URLSafeSerializer(secret_key, salt=_SALT)


def make_token(secret_key: str, checkout_id: str, expires_at: datetime) -> str:
    return _serializer(secret_key).dumps([checkout_id, int(expires_at.timestamp())])


def token_is_valid(
    secret_key: str, checkout_id: str, token: str, now: datetime | None = None
) -> bool:
    """True for a token made for this checkout that has not outlived it; never raises."""
    try:
        signed_id, expires = _serializer(secret_key).loads(token)
    except (BadData, ValueError, TypeError):
        return False
    if signed_id != checkout_id or not isinstance(expires, int):
        return False
    return (now or utcnow()).timestamp() <= expires + STATUS_PAGE_GRACE.total_seconds()


def checkout_url(public_url: str, secret_key: str, checkout_id: str, expires_at: datetime) -> str:
    return (
        f"{public_url}/checkout/{checkout_id}?t={make_token(secret_key, checkout_id, expires_at)}"
    )
