"""Errors: the ApiError tree (stable code + HTTP status) and the one handler that renders them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import structlog
from flask import Flask, Response, current_app, g, json, request
from werkzeug.exceptions import HTTPException

from shared_contracts.errors import HTTP_STATUS, ErrorCode, error_body

log = structlog.get_logger(__name__)

PageRenderer = Callable[[int], Response]
_PAGE_RENDERERS = "payment_error_pages"


class ApiError(Exception):
    """An error the API answers with the contract's envelope; subclasses fix the code."""

    code: ErrorCode = ErrorCode.INTERNAL_ERROR
    default_message = "The service failed to handle this request."

    def __init__(
        self,
        message: str | None = None,
        *,
        details: Mapping[str, Any] | None = None,
        status: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.message = message or self.default_message
        self.details = dict(details or {})
        self.status = status or HTTP_STATUS[self.code]
        self.headers = dict(headers or {})
        super().__init__(self.message)


class MalformedJson(ApiError):
    code = ErrorCode.MALFORMED_JSON
    default_message = "The request body is not valid JSON."


class IdempotencyKeyMissing(ApiError):
    code = ErrorCode.IDEMPOTENCY_KEY_MISSING
    default_message = "This request needs an Idempotency-Key header (1 to 255 characters)."


class Unauthenticated(ApiError):
    code = ErrorCode.UNAUTHENTICATED
    default_message = "Send a valid API key as 'Authorization: Bearer <apiKey>'."


class Forbidden(ApiError):
    code = ErrorCode.FORBIDDEN
    default_message = "This link is not valid."


class InvalidSignature(ApiError):
    code = ErrorCode.INVALID_SIGNATURE
    default_message = "The webhook signature is missing, wrong or stale."


class NotFound(ApiError):
    code = ErrorCode.NOT_FOUND
    default_message = "No such resource."


class IdempotencyKeyInUse(ApiError):
    code = ErrorCode.IDEMPOTENCY_KEY_IN_USE
    default_message = "A request with this Idempotency-Key is still being processed; retry later."


class CheckoutExists(ApiError):
    code = ErrorCode.CHECKOUT_EXISTS
    default_message = "This reservation already has an open or paid checkout."


class InvalidState(ApiError):
    code = ErrorCode.INVALID_STATE


class ValidationFailed(ApiError):
    code = ErrorCode.VALIDATION_ERROR
    default_message = "The request is not valid."


class IdempotencyKeyReused(ApiError):
    code = ErrorCode.IDEMPOTENCY_KEY_REUSED
    default_message = "This Idempotency-Key was already used with a different request."


class UrlNotAllowed(ApiError):
    code = ErrorCode.URL_NOT_ALLOWED


class ProviderUnavailable(ApiError):
    code = ErrorCode.PROVIDER_UNAVAILABLE
    default_message = "The payment provider is unavailable; try again shortly."


class ServiceUnavailable(ApiError):
    """The service itself cannot answer (e.g. the database is unreachable)."""

    code = ErrorCode.PROVIDER_UNAVAILABLE
    default_message = "The service is temporarily unavailable."


_HTTP_CODES: dict[int, tuple[ErrorCode, str]] = {
    400: (ErrorCode.MALFORMED_JSON, "The request could not be understood."),
    404: (ErrorCode.NOT_FOUND, "No such resource."),
    405: (ErrorCode.METHOD_NOT_ALLOWED, "This method is not allowed on this resource."),
    413: (ErrorCode.PAYLOAD_TOO_LARGE, "The request body is larger than 1 MiB."),
    415: (ErrorCode.UNSUPPORTED_MEDIA_TYPE, "Send the body as 'Content-Type: application/json'."),
    422: (ErrorCode.VALIDATION_ERROR, "The request is not valid."),
    429: (ErrorCode.RATE_LIMITED, "Too many requests; slow down."),
}


def render_as_pages(app: Flask, prefix: str, render: PageRenderer) -> None:
    """Paths under `prefix` are a browser's pages, not the API: their errors are rendered by
    `render(status)` (a page with that status) instead of the envelope; headers (Allow,
    Retry-After) are kept."""
    app.extensions.setdefault(_PAGE_RENDERERS, []).append((prefix, render))


def render_error(
    code: ErrorCode,
    message: str,
    status: int,
    details: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    page = _page_renderer()
    if page is not None:
        response = page(status)
    else:
        request_id = getattr(g, "request_id", None) or ""
        body = json.dumps(error_body(code, message, request_id, dict(details or {})))
        response = Response(body, status=status, mimetype="application/json")
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _page_renderer() -> PageRenderer | None:
    for prefix, render in current_app.extensions.get(_PAGE_RENDERERS, ()):
        if request.path.startswith(prefix):
            return render  # type: ignore[no-any-return]
    return None


def handle_api_error(error: ApiError) -> Response:
    return render_error(error.code, error.message, error.status, error.details, error.headers)


def handle_http_exception(error: HTTPException) -> Response:
    """Translate werkzeug and webargs exceptions into the envelope."""
    status = error.code or 500
    if status >= 500:
        return handle_unexpected(error)
    code, message = _HTTP_CODES.get(status, (ErrorCode.VALIDATION_ERROR, error.description or ""))
    details: dict[str, Any] = {}
    data = getattr(error, "data", None) or {}
    messages = data.get("messages") if isinstance(data, dict) else None
    if status == 422 and isinstance(messages, dict):
        details = _flatten_locations(messages)
    headers: dict[str, str] = {}
    if status == 405:
        allowed = getattr(error, "valid_methods", None)
        if allowed:
            headers["Allow"] = ", ".join(sorted(allowed))
    return render_error(code, message, status, details, headers)


def handle_unexpected(error: BaseException) -> Response:
    original = getattr(error, "original_exception", None) or error
    log.error("unhandled_exception", exc_info=original)
    return render_error(
        ErrorCode.INTERNAL_ERROR,
        "The service failed to handle this request; the request id identifies it in our logs.",
        500,
    )


def _flatten_locations(messages: Mapping[str, Any]) -> dict[str, Any]:
    """webargs nests errors under their location ("json", "query"); the contract wants field ->
    messages, so the location level is dropped (a body that is not an object keeps `_schema`)."""
    details: dict[str, Any] = {}
    for location_errors in messages.values():
        if isinstance(location_errors, Mapping):
            details.update(location_errors)
        else:
            details.setdefault("_schema", []).extend(location_errors)
    return details


def init_app(app: Flask) -> None:
    app.register_error_handler(ApiError, handle_api_error)
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(Exception, handle_unexpected)
