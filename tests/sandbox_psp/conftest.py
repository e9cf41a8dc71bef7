"""Fixtures for the sandbox PSP: an app on a tmp SQLite file, an API client, a webhook receiver."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from payment_service.sandbox_psp import close_sandbox_app, create_sandbox_app
from payment_service.sandbox_psp.config import SandboxConfig
from payment_service.sandbox_psp.runtime import EXTENSION, Sandbox
from tests.receivers import Receiver, serving_receiver

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


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with serving_receiver("/hooks/sandbox") as state:
        yield state
