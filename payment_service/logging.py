"""Logging: structlog configuration, redaction of secrets and PII, and the request-id middleware."""

from __future__ import annotations

import logging
import re
import secrets
import sys
import time
from collections.abc import Mapping, MutableMapping
from typing import IO, Any

import structlog
from flask import Flask, Response, g, request

from shared_contracts.request_ids import HEADER, is_request_id

REQUEST_ID_HEADER = HEADER
_EMAIL_RE = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+\.[A-Za-z]{2,})")
# Values that are credentials whatever key they sit under: our API keys and signing secrets,
# bearer tokens quoted in free text, and the `t` of a checkout page's URL (the signed token
# that opens the page), e.g. in gunicorn's "Invalid HTTP request line: 'GET /checkout/...'".
_SECRET_VALUE_RE = re.compile(
    r"(sk_[A-Za-z0-9_-]{16,}|whsec_[A-Za-z0-9+/=]{16,}|Bearer\s+\S+|(?<=[?&]t=)[^&\s'\"#]+)"
)
_SECRET_KEYS = frozenset(
    {"authorization", "api_key", "apikey", "secret", "signing_secret", "signingsecret",
     "password", "token", "secret_key", "cookie", "webhook-signature"}
)  # fmt: skip
REDACTED = "[redacted]"


def new_request_id() -> str:
    return "req_" + secrets.token_urlsafe(12)


def mask_email(text: str) -> str:
    """kim@example.com -> k***@example.com (the domain stays: it helps support, names no one)."""
    return _EMAIL_RE.sub(lambda m: f"{m.group(1)}***@{m.group(2)}", text)


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return mask_email(_SECRET_VALUE_RE.sub(REDACTED, value))
    if isinstance(value, Mapping):
        return {
            k: (REDACTED if str(k).lower() in _SECRET_KEYS else _scrub(v)) for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    return value


def redact(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Last line of defence: drop secret-named keys and mask secret-looking values and e-mails."""
    for key in list(event_dict):
        if key.lower() in _SECRET_KEYS:
            event_dict[key] = REDACTED
        else:
            event_dict[key] = _scrub(event_dict[key])
    return event_dict


def configure_logging(
    log_format: str = "json", level: str = "INFO", stream: IO[str] | None = None
) -> None:
    """Route structlog and the standard library (gunicorn, alembic) through one renderer."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redact,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if log_format == "json"
        else structlog.dev.ConsoleRenderer(colors=stream is None and sys.stderr.isatty())
    )
    structlog.configure(
        processors=[structlog.stdlib.filter_by_level, *shared[:-2],
                    structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )  # fmt: skip
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared[:-2],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            redact,
            renderer,
        ],
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # We write one http.request line per request ourselves.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)


def init_app(app: Flask) -> None:
    """Bind a request id to every request and log one http.request line for it."""
    log = structlog.get_logger("payment_service.http")

    @app.before_request
    def _bind_request_id() -> None:
        incoming = request.headers.get(REQUEST_ID_HEADER)
        g.request_id = incoming if is_request_id(incoming) else new_request_id()
        g.started = time.perf_counter()
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(requestId=g.request_id)

    # The logger structlog hands the line to: below its level, the line is not even built.
    level_of = logging.getLogger("payment_service.http")

    @app.after_request
    def _log_request(response: Response) -> Response:
        request_id = getattr(g, "request_id", None) or new_request_id()
        response.headers[REQUEST_ID_HEADER] = request_id
        if not level_of.isEnabledFor(logging.INFO):
            return response
        started = getattr(g, "started", None)
        duration_ms = round((time.perf_counter() - started) * 1000, 2) if started else None
        log.info(
            "http.request",
            method=request.method,
            path=request.path,
            status=response.status_code,
            duration_ms=duration_ms,
        )
        return response

    @app.teardown_request
    def _unbind(_exc: BaseException | None) -> None:
        structlog.contextvars.clear_contextvars()
