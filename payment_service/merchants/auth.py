"""Authentication of platform calls: `Authorization: Bearer <apiKey>` resolves one merchant."""

from __future__ import annotations

import structlog
from flask import current_app, g, request

from payment_service.errors import Unauthenticated
from payment_service.merchants.models import Merchant
from payment_service.merchants.services import authenticate


def requires_api_key(path: str) -> bool:
    """Every /v1 call is a platform's, except provider webhooks (their adapter verifies them)."""
    return path.startswith("/v1/") and not path.startswith("/v1/providers/")


def authenticate_request() -> None:
    """A before_request hook: for /v1 paths, sets g.merchant or raises Unauthenticated."""
    if not requires_api_key(request.path):
        return
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated()
    with current_app.extensions["payment_db"].transaction() as session:
        merchant = authenticate(session, token.strip())
    if merchant is None:
        raise Unauthenticated()
    g.merchant = merchant
    structlog.contextvars.bind_contextvars(merchantId=merchant.id)


def current_merchant() -> Merchant:
    merchant: Merchant = g.merchant
    return merchant
