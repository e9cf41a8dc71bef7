"""Authentication of platform calls: `Authorization: Bearer <apiKey>` resolves one merchant."""

from __future__ import annotations

import threading
import time

import structlog
from flask import current_app, g, request

from payment_service.errors import Unauthenticated
from payment_service.merchants.models import Merchant
from payment_service.merchants.services import authenticate, hash_api_key

# A key seen recently is not looked up again for this long: one less transaction on every
# API call. A revoked key therefore keeps working for up to this long in each process.
KEY_CACHE_SECONDS = 30.0


class KeyCache:
    """Recently authenticated keys (by hash, never the key itself) -> merchant, per process."""

    def __init__(self, ttl: float = KEY_CACHE_SECONDS, max_entries: int = 10_000) -> None:
        self._ttl = ttl
        self._max_entries = max_entries
        self._entries: dict[str, tuple[float, Merchant]] = {}
        self._lock = threading.Lock()

    def get(self, key_hash: str) -> Merchant | None:
        with self._lock:
            entry = self._entries.get(key_hash)
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def put(self, key_hash: str, merchant: Merchant) -> None:
        with self._lock:
            if len(self._entries) >= self._max_entries:
                self._entries.clear()
            self._entries[key_hash] = (time.monotonic() + self._ttl, merchant)


def requires_api_key(path: str) -> bool:
    """Every /v1 call is a platform's, except provider webhooks (their adapter verifies them)."""
    return path.startswith("/v1/") and not path.startswith("/v1/providers/")


def authenticate_request() -> None:
    """A before_request hook: for /v1 paths, sets g.merchant or raises Unauthenticated."""
    if not requires_api_key(request.path):
        return
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthenticated()
    cache: KeyCache = current_app.extensions["payment_key_cache"]
    key_hash = hash_api_key(token)
    merchant = cache.get(key_hash)
    if merchant is None:
        with current_app.extensions["payment_db"].transaction() as session:
            merchant = authenticate(session, token)
        if merchant is None:
            raise Unauthenticated()
        cache.put(key_hash, merchant)
    g.merchant = merchant
    structlog.contextvars.bind_contextvars(merchantId=merchant.id)


def current_merchant() -> Merchant:
    merchant: Merchant = g.merchant
    return merchant
