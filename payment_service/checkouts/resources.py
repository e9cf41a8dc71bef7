"""HTTP resources for /v1/ticket-checkouts: parse, authenticate, call a service, serialise."""

from __future__ import annotations

import json
from typing import Any

from flask import Response, current_app, g, request
from flask.views import MethodView

from payment_service.api import Blueprint
from payment_service.checkouts import at_once, services
from payment_service.checkouts.models import Checkout
from payment_service.checkouts.tokens import checkout_url
from payment_service.db import Database, utcnow
from payment_service.errors import ApiError
from payment_service.idempotency.services import (
    StoredResponse,
    check_key,
    fingerprint,
    run_idempotent,
)
from payment_service.merchants.auth import current_merchant
from payment_service.rawsql import Tx
from shared_contracts.checkouts import (
    CheckoutListSchema,
    CheckoutSchema,
    CreateCheckoutSchema,
    FindCheckoutsQuerySchema,
)

blp = Blueprint(
    "checkouts", __name__, url_prefix="/v1/ticket-checkouts",
    description="Create and follow ticket checkouts. Every call needs `Authorization: Bearer <apiKey>`.",
)  # fmt: skip

_EXAMPLE = {
    "reservationId": "res_123", "eventId": "evt_42", "tierId": "tier_7",
    "orderName": "Seoul Marathon 2027 - Full course", "amount": 30000, "currency": "KRW",
    "customer": {"platformUserId": "u_9", "name": "Kim", "email": "kim@example.com"},
    "successUrl": "https://platform.example/events/evt_42/register?payment=success",
    "cancelUrl": "https://platform.example/events/evt_42/register?payment=cancel",
    "callbackUrl": "https://platform.example/hooks/ticket-payments",
}  # fmt: skip
_IDEMPOTENCY_HEADER = {
    "name": "Idempotency-Key", "in": "header", "required": True,
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
    "description": (
        "1 to 255 printable characters, new for each new checkout (a UUID is a good choice). "
        "Same key and body within 24 h replays the first answer; same key and another body "
        "is 422 `idempotency_key_reused`."
    ),
}  # fmt: skip
_CREATED_EXAMPLE = {
    "checkoutId": "chk_4Yb2Qm7TzL1cWn8RkP0sXe3D",
    "checkoutUrl": "https://pay.example/checkout/chk_4Yb2Qm7TzL1cWn8RkP0sXe3D?t=WyJjaGtf...",
    "status": "open", "reservationId": "res_123", "eventId": "evt_42", "tierId": "tier_7",
    "orderName": "Seoul Marathon 2027 - Full course", "amount": 30000, "currency": "KRW",
    "provider": "sandbox", "paymentMethodFamily": None, "attempts": 0, "maxAttempts": 3,
    "metadata": {}, "expiresAt": "2026-11-22T10:15:00+00:00",
    "createdAt": "2026-11-22T10:00:00+00:00", "paidAt": None, "payment": None,
}  # fmt: skip
_REPLAYED_HEADER = {
    "Idempotent-Replayed": {
        "description": "`true` when this is the stored answer to an earlier request with this key.",
        "schema": {"type": "string", "enum": ["true"]},
    }
}


# Schemas are stateless after construction, and constructing one deep-copies its fields:
# build each once, not per request.
CHECKOUT_SCHEMA = CheckoutSchema()


def view(checkout: Checkout) -> dict[str, Any]:
    """The checkout in CheckoutSchema's attribute names (the schema maps them to the wire)."""
    settings = current_app.extensions["payment_settings"]
    payment = services.captured_payment(current_app.extensions["payment_db"], checkout)
    return {
        "checkout_id": checkout.id,
        "checkout_url": checkout_url(
            settings.public_url, settings.secret_key, checkout.id, checkout.expires_at
        ),
        "status": checkout.effective_status(),
        "reservation_id": checkout.reservation_id,
        "event_id": checkout.event_id,
        "tier_id": checkout.tier_id,
        "order_name": checkout.order_name,
        "amount": checkout.amount,
        "currency": checkout.currency,
        "provider": checkout.provider,
        "payment_method_family": checkout.payment_method_family,
        "attempts": checkout.attempts,
        "max_attempts": settings.max_payment_attempts,
        "metadata": checkout.metadata_,
        "expires_at": checkout.expires_at,
        "created_at": checkout.created_at,
        "paid_at": checkout.paid_at,
        "payment": payment,
    }


def _json(status: int, payload: dict[str, Any]) -> StoredResponse:
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    return StoredResponse(status, body, {"Content-Type": "application/json"})


def _respond(stored: StoredResponse, replayed: bool = False) -> Response:
    response = Response(stored.body, status=stored.status, headers=dict(stored.headers))
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


def _replay_or_refuse(
    db: Database, merchant_id: str, key: str, request_fingerprint: str, refusal: ApiError
) -> Response:
    """A retry of a request that passed validate_request when it was first made may fail it
    now (its expiresAt is nearer, the merchant's settings changed): it still gets the stored
    answer, or 422 for a key already used with another body (CONTRACT §5). Only a refused
    request looks, so the usual create pays nothing for this; with no stored answer the
    refusal stands and, like every validation error, is not stored."""

    def refuse(_tx: Tx) -> StoredResponse:
        raise refusal

    stored, _ = run_idempotent(db, merchant_id, key, request_fingerprint, refuse)
    return _respond(stored, replayed=True)  # run_idempotent returned: it found an answer


@blp.route("")
class TicketCheckouts(MethodView):
    @blp.arguments(CreateCheckoutSchema(), example=_EXAMPLE)
    @blp.response(201, CHECKOUT_SCHEMA, example=_CREATED_EXAMPLE, headers=_REPLAYED_HEADER)
    @blp.alt_response(
        400, description="`malformed_json`, or `idempotency_key_missing` (missing or invalid key)"
    )
    @blp.alt_response(401, description="`unauthenticated`")
    @blp.alt_response(
        409, description="`idempotency_key_in_use`, or `checkout_exists` (`details.checkoutId`)"
    )
    @blp.alt_response(413, description="`payload_too_large` (the body is over 1 MiB)")
    @blp.alt_response(
        415, description="`unsupported_media_type` (send `Content-Type: application/json`)"
    )
    @blp.alt_response(
        422,
        description="`validation_error` (`details`: field -> messages), `url_not_allowed` "
        "or `idempotency_key_reused`",
    )
    @blp.doc(parameters=[_IDEMPOTENCY_HEADER], security=[{"bearerAuth": []}])
    def post(self, data: dict[str, Any]) -> Response:
        """Create a checkout for one reservation

        Answers at once with `checkoutUrl`; no provider is called. Retries with the same
        `Idempotency-Key` and body replay the first answer with `Idempotent-Replayed: true`.
        """
        key = check_key(request.headers.get("Idempotency-Key"))
        merchant = current_merchant()
        now = utcnow()
        db = current_app.extensions["payment_db"]
        request_fingerprint = fingerprint(request.method, request.path, request.get_json())
        try:
            services.validate_request(merchant, data, current_app.extensions["payment_policy"], now)
        except ApiError as refusal:
            return _replay_or_refuse(db, merchant.id, key, request_fingerprint, refusal)

        checkout = services.new_checkout(merchant, data, request_id=g.request_id, now=now)
        created = _json(201, CHECKOUT_SCHEMA.dump(view(checkout)))
        # The usual create on PostgreSQL: one statement (see at_once.py). When it changes
        # nothing, the general path below inserts the same checkout and answers the same.
        if db.is_postgresql and at_once.create_at_once(
            db, checkout, key, request_fingerprint, created
        ):
            return _respond(created)

        def handler(tx: Tx) -> StoredResponse:
            services.create_checkout(tx, checkout)
            return created

        stored, replayed = run_idempotent(db, merchant.id, key, request_fingerprint, handler)
        if replayed and stored.body == created.body:
            # This request's own answer: the one statement committed, then its connection died
            # before the result came back. The body names this request's new checkout id, so
            # no earlier request stored it; it is a create, not a replay.
            services.name_in_logs(checkout)
            replayed = False
        return _respond(stored, replayed)

    @blp.arguments(FindCheckoutsQuerySchema, location="query")
    @blp.response(200, CheckoutListSchema)
    @blp.alt_response(401, description="`unauthenticated`")
    @blp.alt_response(422, description="`validation_error` (`details`: field -> messages)")
    @blp.doc(security=[{"bearerAuth": []}])
    def get(self, query: dict[str, str]) -> dict[str, Any]:
        """Find the checkouts of a reservation, newest first"""
        found = services.find_checkouts(
            current_app.extensions["payment_db"], current_merchant().id, query["reservation_id"]
        )
        return {"data": [view(checkout) for checkout in found]}


@blp.route("/<string:checkout_id>")
class TicketCheckout(MethodView):
    @blp.response(200, CHECKOUT_SCHEMA)
    @blp.alt_response(401, description="`unauthenticated`")
    @blp.alt_response(404, description="`not_found` (also for another merchant's checkout)")
    @blp.doc(security=[{"bearerAuth": []}])
    def get(self, checkout_id: str) -> dict[str, Any]:
        """Read a checkout"""
        checkout = services.get_checkout(
            current_app.extensions["payment_db"], current_merchant().id, checkout_id
        )
        return view(checkout)


@blp.route("/<string:checkout_id>/cancel")
class CancelTicketCheckout(MethodView):
    @blp.response(200, CHECKOUT_SCHEMA)
    @blp.alt_response(401, description="`unauthenticated`")
    @blp.alt_response(404, description="`not_found` (also for another merchant's checkout)")
    @blp.alt_response(
        409, description="`invalid_state`: the checkout is paid, refunded, failed or expired"
    )
    @blp.doc(security=[{"bearerAuth": []}])
    def post(self, checkout_id: str) -> dict[str, Any]:
        """Cancel an open checkout (repeating it is harmless)"""
        checkout = services.cancel_checkout(
            current_app.extensions["payment_db"],
            current_merchant().id,
            checkout_id,
            request_id=g.request_id,
        )
        return view(checkout)
