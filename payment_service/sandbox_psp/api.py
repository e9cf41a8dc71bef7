"""The REST API (``/api/...``): bearer auth, the down switch, sessions, payments, refunds."""

from __future__ import annotations

import hmac
import json
from typing import Any

from flask import Blueprint, Flask, Response, jsonify, request, url_for

from payment_service.sandbox_psp import refunds, services
from payment_service.sandbox_psp.errors import SandboxError, error_response, invalid_request
from payment_service.sandbox_psp.models import Switches
from payment_service.sandbox_psp.runtime import Sandbox, current_sandbox
from payment_service.sandbox_psp.schemas import require_object

bp = Blueprint("sandbox_api", __name__, url_prefix="/api")
MAX_KEY_LENGTH = 255


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)


def authenticate() -> Response | None:
    """None when the request carries ``Authorization: Bearer <api_key>``, else the 401."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    expected = current_sandbox().config.api_key.encode()
    if scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), expected):
        return None
    response = error_response(
        401, "authentication_error", "Missing or invalid API key (Authorization: Bearer ...)."
    )
    response.headers["WWW-Authenticate"] = 'Bearer realm="sandbox-psp"'
    return response


def is_down(sandbox: Sandbox) -> bool:
    with sandbox.store.transaction() as db:
        switches = db.get(Switches, 1)
        return bool(switches and switches.down)


@bp.before_request
def _guard() -> Response | None:
    if (denied := authenticate()) is not None:
        return denied
    if is_down(current_sandbox()):
        return error_response(503, "api_error", "sandbox is down")
    return None


@bp.post("/sessions")
def create_session() -> tuple[Response, int]:
    def page_url(session_id: str) -> str:
        return url_for("sandbox_pages.pay_page", session_id=session_id, _external=True)

    session, created = services.create_session(
        current_sandbox(), json_body(), idempotency_key(), page_url
    )
    return jsonify(session), 201 if created else 200


@bp.get("/sessions/<session_id>")
def get_session(session_id: str) -> Response:
    return jsonify(services.get_session(current_sandbox(), session_id))


@bp.post("/sessions/<session_id>/expire")
def expire_session(session_id: str) -> Response:
    return jsonify(services.expire_session(current_sandbox(), session_id))


@bp.get("/payments/<payment_id>")
def get_payment(payment_id: str) -> Response:
    return jsonify(refunds.get_payment(current_sandbox(), payment_id))


@bp.post("/payments/<payment_id>/refunds")
def create_refund(payment_id: str) -> tuple[Response, int]:
    refund, created = refunds.create_refund(
        current_sandbox(), payment_id, json_body(optional=True), idempotency_key()
    )
    return jsonify(refund), 201 if created else 200


def json_body(*, optional: bool = False) -> dict[str, Any]:
    """The request's JSON object; an empty body is ``{}`` where the body is optional."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        if optional:
            return {}
        raise invalid_request("A JSON object body is required.")
    try:
        body = json.loads(raw)
    except ValueError:
        raise invalid_request("The request body is not valid JSON.") from None
    return require_object(body)


def idempotency_key() -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not 1 <= len(key) <= MAX_KEY_LENGTH:
        raise SandboxError(
            400, "invalid_request_error", f"Idempotency-Key must be 1-{MAX_KEY_LENGTH} characters."
        )
    return key
