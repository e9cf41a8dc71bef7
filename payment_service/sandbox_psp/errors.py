"""API errors: ``{"error": {"type": ..., "message": ...}}`` with a stable type per HTTP status."""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify


class SandboxError(Exception):
    """An API error; ``details`` (field -> messages) is added for validation errors."""

    def __init__(
        self, status: int, type_: str, message: str, details: dict[str, list[str]] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.type = type_
        self.message = message
        self.details = details

    def response(self) -> Response:
        return error_response(self.status, self.type, self.message, self.details)


def error_response(
    status: int, type_: str, message: str, details: dict[str, list[str]] | None = None
) -> Response:
    error: dict[str, Any] = {"type": type_, "message": message}
    if details:
        error["details"] = details
    response = jsonify({"error": error})
    response.status_code = status
    return response


def invalid_request(message: str) -> SandboxError:
    return SandboxError(400, "invalid_request_error", message)


def idempotency_error(message: str) -> SandboxError:
    return SandboxError(400, "idempotency_error", message)


def not_found(kind: str, object_id: str) -> SandboxError:
    return SandboxError(404, "not_found_error", f"No such {kind}: {object_id!r}")


def invalid_state(message: str) -> SandboxError:
    return SandboxError(409, "invalid_state_error", message)


def validation_error(details: dict[str, list[str]]) -> SandboxError:
    fields = ", ".join(sorted(details))
    return SandboxError(422, "validation_error", f"Invalid fields: {fields}", details)


# The HTTP status an unhandled werkzeug error keeps, with the type its JSON body carries.
HTTP_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
}
