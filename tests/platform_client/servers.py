"""A scripted stand-in for the payment service's API, served over real HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, Response, request
from werkzeug.serving import make_server

CHECKOUT = {
    "checkoutId": "chk_1", "checkoutUrl": "https://pay.example/checkout/chk_1?t=abc",
    "status": "open", "reservationId": "res_123", "eventId": "evt_42", "tierId": "tier_7",
    "orderName": "Seoul Marathon 2027 - Full course", "amount": 30000, "currency": "KRW",
    "provider": "sandbox", "paymentMethodFamily": None, "attempts": 0, "maxAttempts": 3,
    "metadata": {"seat": "A1"}, "expiresAt": "2026-11-22T10:15:00+00:00",
    "createdAt": "2026-11-22T10:00:00+00:00", "paidAt": None, "payment": None,
}  # fmt: skip


def envelope(code: str, message: str = "no", details: dict[str, Any] | None = None) -> bytes:
    body = {
        "error": {
            "code": code,
            "message": message,
            "requestId": "req_srv",
            "details": details or {},
        }
    }
    return json.dumps(body).encode()


@dataclass(frozen=True)
class Answer:
    status: int = 201
    body: bytes = json.dumps(CHECKOUT).encode()
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


@dataclass
class Script:
    """Answers in turn, then ``Answer()`` (a 201 checkout); records every request."""

    url: str = ""
    answers: list[Answer] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next(self, seen: Seen) -> Answer:
        with self.lock:
            self.seen.append(seen)
            return self.answers.pop(0) if self.answers else Answer()


def _app(script: Script) -> Flask:
    app = Flask(__name__)

    @app.route("/", defaults={"path": ""}, methods=["GET", "POST"])
    @app.route("/<path:path>", methods=["GET", "POST"])
    def anything(path: str) -> Response:
        answer = script.next(
            Seen(
                request.method,
                request.environ["RAW_URI"].partition("?")[0],  # as sent, not unquoted
                dict(request.args),
                dict(request.headers),
                request.get_data(),
            )
        )
        time.sleep(answer.delay)
        response = Response(answer.body, status=answer.status, content_type=answer.content_type)
        response.headers.update({"X-Request-ID": "req_hdr", **answer.headers})
        return response

    return app


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """Serve a WSGI app on 127.0.0.1:<free port> in a thread; yields its root URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@contextmanager
def scripted_service() -> Iterator[Script]:
    script = Script()
    with serving(_app(script)) as url:
        script.url = url
        yield script
