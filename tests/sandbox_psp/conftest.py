"""Fixtures for the sandbox PSP: an app on a tmp SQLite file, an API client, a webhook receiver."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from payment_service.sandbox_psp import close_sandbox_app, create_sandbox_app
from payment_service.sandbox_psp.config import SandboxConfig
from payment_service.sandbox_psp.runtime import EXTENSION, Sandbox

API_KEY = "sbx_key_for_tests"
WEBHOOK_SECRET = "sbx_whsec_for_tests"


def session_body(**overrides: Any) -> dict[str, Any]:
    """A valid ``POST /api/sessions`` body; keyword arguments replace (or, with None, drop) fields."""
    body: dict[str, Any] = {
        "amount": 30000,
        "currency": "KRW",
        "reference": "chk_test_1",
        "description": "Seoul Marathon 2027 - Full course",
        "returnUrl": "https://pay.test/return/chk_test_1?t=abc",
        "cancelUrl": "https://pay.test/checkout/chk_test_1?t=abc",
        "webhookUrl": "http://127.0.0.1:9/unused",
    }
    body.update(overrides)
    return {key: value for key, value in body.items() if value is not None}


def make_config(tmp_path: Path, **overrides: Any) -> SandboxConfig:
    values: dict[str, Any] = {
        "api_key": API_KEY,
        "webhook_secret": WEBHOOK_SECRET,
        "database_url": f"sqlite:///{tmp_path / 'sandbox-psp.db'}",
    }
    values.update(overrides)
    return SandboxConfig(**values)


class Api:
    """The test client with the bearer key; ``post``/``get`` return the werkzeug response."""

    def __init__(self, client: FlaskClient, prefix: str = "") -> None:
        self.client = client
        self.prefix = prefix
        self.headers = {"Authorization": f"Bearer {API_KEY}"}

    def get(self, path: str) -> TestResponse:
        return self.client.get(self.prefix + path, headers=self.headers)

    def post(
        self, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> TestResponse:
        return self.client.post(
            self.prefix + path, json=body, headers={**self.headers, **(headers or {})}
        )

    def create_session(self, **overrides: Any) -> dict[str, Any]:
        response = self.post("/api/sessions", session_body(**overrides))
        assert response.status_code == 201, response.json
        return response.json  # type: ignore[no-any-return]

    def configure(self, **switches: Any) -> dict[str, Any]:
        response = self.post("/api/test/config", switches)
        assert response.status_code == 200, response.json
        return response.json  # type: ignore[no-any-return]


@pytest.fixture
def sandbox_config(tmp_path: Path) -> SandboxConfig:
    return make_config(tmp_path)


@pytest.fixture
def sandbox_app(sandbox_config: SandboxConfig) -> Iterator[Flask]:
    app = create_sandbox_app(sandbox_config)
    app.config["TESTING"] = True
    yield app
    close_sandbox_app(app)
    leaked = [t for t in threading.enumerate() if t.name == "sandbox-webhooks" and t.is_alive()]
    assert not leaked, "close_sandbox_app() must stop the webhook sender"


@pytest.fixture
def sandbox(sandbox_app: Flask) -> Sandbox:
    return sandbox_app.extensions[EXTENSION]  # type: ignore[no-any-return]


@pytest.fixture
def browser(sandbox_app: Flask) -> FlaskClient:
    """A client without credentials, as a buyer's browser is."""
    return sandbox_app.test_client()


@pytest.fixture
def api(sandbox_app: Flask) -> Api:
    return Api(sandbox_app.test_client())


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def event(self) -> dict[str, Any]:
        return json.loads(self.body)  # type: ignore[no-any-return]


@dataclass
class Receiver:
    """A real HTTP server on 127.0.0.1 recording every POST; ``statuses`` answers in turn."""

    url: str = ""
    requests: list[Received] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)  # then 200 once used up
    changed: threading.Condition = field(default_factory=threading.Condition)

    def record(self, received: Received) -> int:
        with self.changed:
            self.requests.append(received)
            self.changed.notify_all()
            return self.statuses.pop(0) if self.statuses else 200

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        with self.changed:
            while len(self.requests) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"expected {count} webhooks, got {len(self.requests)}")
                self.changed.wait(left)
            return list(self.requests)

    def settle(self, seconds: float = 0.5) -> list[Received]:
        """Everything received after a quiet pause (to show that nothing more arrives)."""
        time.sleep(seconds)
        with self.changed:
            return list(self.requests)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            status = state.record(Received(self.path, dict(self.headers.items()), body))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/sandbox"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
