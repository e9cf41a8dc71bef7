"""mount_callback_endpoint: a Flask view that verifies, de-duplicates and hands callbacks on."""

from __future__ import annotations

import logging
import secrets as _random
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from flask import Blueprint, Flask, Response, current_app, request

from platform_client.callbacks import CallbackEvent, verify_callback
from platform_client.errors import CallbackRejected
from shared_contracts.request_ids import is_request_id
from shared_contracts.signing import check_secret

log = logging.getLogger(__name__)

#: The answers that make the payment service give up on a callback (CONTRACT §8); a rejected
#: ``ticket_payment.paid`` is refunded.
REJECTION_STATUSES = frozenset({409, 410, 422})
#: What an error answer may hold. A payment service may read only the first 2 KiB of it, and a
#: cut-off body is no error body, so a rejection would be retried instead (and a refused
#: payment never refunded): the whole body stays under 1 KiB, the message within 500
#: characters (fewer if they are not ASCII), and details keep only the entries that fit.
MAX_MESSAGE_CHARS = 500
MAX_CODE_CHARS = 64
MAX_BODY_BYTES = 1000


class RejectCallback(Exception):
    """Raised by a handler to refuse a callback for good, e.g. ``reservation_expired`` when a
    late payment finds the seat taken. The service does not retry it and refunds a paid one.

    The answer is kept under 1 KiB so that any payment service reads it whole: ``code`` (cut to
    64 characters) always goes out, ``message`` is cut to 500 characters or fewer, and
    ``details`` entries that do not fit are left out. Put long diagnostics in your logs."""

    def __init__(
        self,
        code: str,
        message: str,
        status: int = 409,
        details: Mapping[str, object] | None = None,
    ) -> None:
        if status not in REJECTION_STATUSES:
            raise ValueError(f"status must be one of {sorted(REJECTION_STATUSES)}, not {status}")
        if not code:
            raise ValueError("code must not be empty")
        # Cut, never refused: raised in a handler, a ValueError would answer 500, and the
        # refusal would turn into days of retries (and a paid callback's refund wait for them).
        code = code[:MAX_CODE_CHARS]
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status
        self.details = dict(details or {})


class SeenStore(Protocol):
    """Which ``webhook-id``s were handled. A fast path only: two deliveries of one event can
    race past ``seen``, so handlers must be idempotent too (the ledger records the callback id
    in the same transaction as its effect)."""

    def seen(self, event_id: str) -> bool: ...

    def remember(self, event_id: str) -> None: ...


class InMemorySeenStore:
    """A thread-safe SeenStore for tests and development; forgets on restart and keeps at most
    ``max_entries`` ids (the oldest go first)."""

    def __init__(self, max_entries: int = 100_000) -> None:
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()
        self._max_entries = max_entries

    def seen(self, event_id: str) -> bool:
        with self._lock:
            return event_id in self._ids

    def remember(self, event_id: str) -> None:
        with self._lock:
            self._ids[event_id] = None
            self._ids.move_to_end(event_id)
            while len(self._ids) > self._max_entries:
                self._ids.popitem(last=False)


Secrets = Callable[[], Sequence[str]] | Sequence[str]


def mount_callback_endpoint(
    app_or_blueprint: Flask | Blueprint,
    rule: str,
    *,
    secrets: Secrets,
    handler: Callable[[CallbackEvent], None],
    seen: SeenStore,
    endpoint: str = "ticket_payment_callback",
) -> None:
    """Add ``POST rule``: verify the callback, skip a repeated ``webhook-id``, call ``handler``.

    Answers 204 when handled, 200 for a handled repeat (the handler is not called again), 400 for a
    callback that fails verification, the RejectCallback's 409/410/422 with the error envelope,
    and 500 for any other exception (the service retries, and the id is not remembered).
    ``secrets`` may be a callable so that a rotation takes effect without a restart; a list is
    checked here (ValueError if empty or a secret is not a ``whsec_`` secret), since a malformed
    one would fail every callback with a 500.
    """
    if not callable(secrets):
        _check_secrets(secrets)

    def receive_callback() -> Response:
        # The raw bytes, exactly as signed: never let Flask parse the body first.
        body = request.get_data(cache=False)
        current = secrets() if callable(secrets) else secrets
        try:
            event = verify_callback(body, dict(request.headers.items()), current)
        except CallbackRejected as exc:
            log.warning("callback.rejected", extra={"code": exc.code, "reason": str(exc)})
            return _error(400, exc.code, str(exc))
        if seen.seen(event.event_id):
            return Response(status=200)
        try:
            handler(event)
        except RejectCallback as exc:
            # Not remembered: a replay of a rejected event must be rejected again, not "handled".
            return _error(exc.status, exc.code, exc.message, exc.details)
        except Exception:
            log.exception("callback.handler_failed", extra={"event_id": event.event_id})
            return _error(500, "internal_error", "The callback could not be handled; retry.")
        seen.remember(event.event_id)
        return Response(status=204)

    app_or_blueprint.add_url_rule(
        rule, endpoint=endpoint, view_func=receive_callback, methods=["POST"]
    )


def _check_secrets(secrets: Sequence[str]) -> None:
    listed = [secrets] if isinstance(secrets, str) else list(secrets)
    if not listed:
        raise ValueError("secrets is empty: at least one signing secret is needed")
    for index, secret in enumerate(listed):
        try:
            check_secret(secret)
        except ValueError as exc:  # its message names the problem, never the value
            raise ValueError(f"secrets[{index}]: {exc}") from None


def _error(
    status: int, code: str, message: str, details: Mapping[str, object] | None = None
) -> Response:
    # The service's id if it sent a valid one; anything else could be long, and is not ours.
    given = request.headers.get("X-Request-ID", "")
    request_id = given if is_request_id(given) else "req_" + _random.token_hex(12)
    body = _error_body(code, message[:MAX_MESSAGE_CHARS], request_id, dict(details or {}))
    return current_app.response_class(body, status=status, mimetype="application/json")


def _error_body(code: str, message: str, request_id: str, details: dict[str, object]) -> str:
    """The error envelope within MAX_BODY_BYTES: the message is shortened first (escaped, a
    character can take up to 12 bytes), then details get the entries that still fit."""
    while len(body := _envelope(code, message, request_id, {})) > MAX_BODY_BYTES and message:
        overflow = len(body) - MAX_BODY_BYTES
        message = message[: -max(1, overflow // 12)]
    kept: dict[str, object] = {}
    for name, value in details.items():
        if len(_envelope(code, message, request_id, {**kept, name: value})) <= MAX_BODY_BYTES:
            kept[name] = value
    return _envelope(code, message, request_id, kept)


def _envelope(code: str, message: str, request_id: str, details: dict[str, object]) -> str:
    error = {"code": code, "message": message, "requestId": request_id, "details": details}
    # ASCII only (non-ASCII escaped), so that its length in characters is its length in bytes.
    return current_app.json.dumps({"error": error}, ensure_ascii=True)
