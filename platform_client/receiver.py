"""mount_callback_endpoint: a Flask view that verifies, de-duplicates and hands callbacks on."""

from __future__ import annotations

import logging
import secrets as _random
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from flask import Blueprint, Flask, Response, jsonify, request

from platform_client.callbacks import CallbackEvent, verify_callback
from platform_client.errors import CallbackRejected

log = logging.getLogger(__name__)

#: The answers that make the payment service give up on a callback (CONTRACT §8); a rejected
#: ``ticket_payment.paid`` is refunded.
REJECTION_STATUSES = frozenset({409, 410, 422})


class RejectCallback(Exception):
    """Raised by a handler to refuse a callback for good, e.g. ``reservation_expired`` when a
    late payment finds the seat taken. The service does not retry it and refunds a paid one."""

    def __init__(
        self,
        code: str,
        message: str,
        status: int = 409,
        details: Mapping[str, object] | None = None,
    ) -> None:
        if status not in REJECTION_STATUSES:
            raise ValueError(f"status must be one of {sorted(REJECTION_STATUSES)}, not {status}")
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
    ``secrets`` may be a callable so that a rotation takes effect without a restart.
    """

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


def _error(
    status: int, code: str, message: str, details: Mapping[str, object] | None = None
) -> Response:
    request_id = request.headers.get("X-Request-ID") or "req_" + _random.token_hex(12)
    body = {
        "error": {
            "code": code,
            "message": message,
            "requestId": request_id,
            "details": dict(details or {}),
        }
    }
    response = jsonify(body)
    response.status_code = status
    return response
