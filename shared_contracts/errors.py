"""The error envelope of the wire contract (CONTRACT §3): codes, their HTTP statuses, the body."""

from __future__ import annotations

import json
from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType

from marshmallow import Schema, fields


class ErrorCode(StrEnum):
    """A stable, machine-readable error code; clients branch on this, never on the message."""

    MALFORMED_JSON = "malformed_json"
    IDEMPOTENCY_KEY_MISSING = "idempotency_key_missing"
    UNAUTHENTICATED = "unauthenticated"
    FORBIDDEN = "forbidden"  # a bad or expired checkout-page token, never a cross-tenant read
    INVALID_SIGNATURE = "invalid_signature"  # a provider webhook that fails verification
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    IDEMPOTENCY_KEY_IN_USE = "idempotency_key_in_use"
    CHECKOUT_EXISTS = "checkout_exists"
    INVALID_STATE = "invalid_state"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    VALIDATION_ERROR = "validation_error"
    IDEMPOTENCY_KEY_REUSED = "idempotency_key_reused"
    URL_NOT_ALLOWED = "url_not_allowed"
    RATE_LIMITED = "rate_limited"
    PROVIDER_UNAVAILABLE = "provider_unavailable"
    INTERNAL_ERROR = "internal_error"


HTTP_STATUS: Mapping[ErrorCode, int] = MappingProxyType(
    {
        ErrorCode.MALFORMED_JSON: 400,
        ErrorCode.IDEMPOTENCY_KEY_MISSING: 400,
        ErrorCode.UNAUTHENTICATED: 401,
        ErrorCode.FORBIDDEN: 403,
        ErrorCode.INVALID_SIGNATURE: 400,
        ErrorCode.NOT_FOUND: 404,
        ErrorCode.METHOD_NOT_ALLOWED: 405,
        ErrorCode.IDEMPOTENCY_KEY_IN_USE: 409,
        ErrorCode.CHECKOUT_EXISTS: 409,
        ErrorCode.INVALID_STATE: 409,
        ErrorCode.PAYLOAD_TOO_LARGE: 413,
        ErrorCode.UNSUPPORTED_MEDIA_TYPE: 415,
        ErrorCode.VALIDATION_ERROR: 422,
        ErrorCode.IDEMPOTENCY_KEY_REUSED: 422,
        ErrorCode.URL_NOT_ALLOWED: 422,
        ErrorCode.RATE_LIMITED: 429,
        # The contract allows 502 or 503; 503 tells clients "try again later", which is the truth.
        ErrorCode.PROVIDER_UNAVAILABLE: 503,
        ErrorCode.INTERNAL_ERROR: 500,
    }
)


class ErrorSchema(Schema):
    """The inner object of an error body."""

    code = fields.Enum(
        ErrorCode,
        by_value=True,
        required=True,
        metadata={"description": "Stable and machine-readable: branch on this, not on `message`."},
    )
    message = fields.String(required=True, metadata={"description": "For humans; may change."})
    request_id = fields.String(
        required=True,
        data_key="requestId",
        metadata={"description": "The request's `X-Request-ID`; quote it when asking for help."},
    )
    details = fields.Dict(
        keys=fields.String(),
        values=fields.Raw(),
        load_default=dict,
        metadata={
            "description": (
                "`validation_error`: field -> messages; `checkout_exists`: the existing "
                "`checkoutId`; otherwise usually empty."
            )
        },
    )


class ErrorEnvelopeSchema(Schema):
    """Every non-2xx JSON response: ``{"error": {...}}``."""

    error = fields.Nested(ErrorSchema, required=True)


def error_body(
    code: ErrorCode | str,
    message: str,
    request_id: str,
    details: Mapping[str, object] | None = None,
) -> dict[str, object]:
    """Build the wire body of an error; an unknown ``code`` raises ValueError."""
    return {
        "error": {
            "code": ErrorCode(code).value,
            "message": message,
            "requestId": request_id,
            "details": dict(details or {}),
        }
    }


def error_code_of(body: str | bytes | None) -> str | None:
    """The ``code`` of a §3 error body (a JSON object whose ``error`` is an object holding a
    non-empty string ``code``; its other fields are not required), or None for anything else:
    not JSON, nested too deeply to parse, another shape."""
    try:
        parsed = json.loads(body or "")
    except (ValueError, RecursionError):  # RecursionError: a deeply nested "[[[[…"
        return None
    error = parsed.get("error") if isinstance(parsed, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    return code if isinstance(code, str) and code else None
