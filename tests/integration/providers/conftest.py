"""Real HTTP servers on 127.0.0.1 for the provider adapters: the sandbox PSP, a webhook
receiver, and a scripted stand-in for answers the sandbox never gives (5xx, HTML, redirects).

None of this needs the payment service's database: no `db`/`database_url` fixture here.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import count
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from payment_service.providers.base import ProviderPayment, SessionRequest
from payment_service.providers.sandbox import SandboxProvider, sandbox_base_url
from payment_service.sandbox_psp import SandboxConfig, close_sandbox_app, create_sandbox_app
from tests.receivers import Receiver, serving_receiver

API_KEY = "sbx_key_adapter_tests_0123456789"
WEBHOOK_SECRET = "sbx_whsec_adapter_tests"
_numbers = count(1)


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """Serve a WSGI app on 127.0.0.1:<free port> in a thread; yields its root URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(
        target=server.serve_forever, args=(0.05,), name="test-wsgi-server", daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


# -- the webhook receiver --------------------------------------------------------------------


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with serving_receiver("/hooks/sandbox") as state:
        yield state


# -- the sandbox PSP over real HTTP -----------------------------------------------------------


@pytest.fixture
def sandbox_app(tmp_path: Path, receiver: Receiver) -> Iterator[Flask]:
    """The sandbox on a tmp SQLite file. It depends on `receiver` so that it is closed first:
    its webhook sender stops before the receiver it posts to goes away."""
    config = SandboxConfig(
        api_key=API_KEY,
        webhook_secret=WEBHOOK_SECRET,
        database_url=f"sqlite:///{tmp_path / 'sandbox-psp.db'}",
    )
    app = create_sandbox_app(config)
    try:
        yield app
    finally:
        close_sandbox_app(app)


@pytest.fixture
def sandbox_url(sandbox_app: Flask) -> Iterator[str]:
    """The sandbox served alone, as ``python -m payment_service.sandbox_psp`` serves it."""
    with serving(sandbox_app) as url:
        yield url


@pytest.fixture
def mounted_public_url(sandbox_app: Flask) -> Iterator[str]:
    """A server whose /sandbox is the sandbox, as the payment service mounts it."""
    outside = Response("not the sandbox", status=404)
    with serving(DispatcherMiddleware(outside, {"/sandbox": sandbox_app})) as url:
        yield url + "/"


def make_provider(base_url: str, **options: Any) -> SandboxProvider:
    options = {"connect_timeout": 2.0, "read_timeout": 5.0, **options}
    return SandboxProvider(base_url, API_KEY, WEBHOOK_SECRET, **options)


@pytest.fixture
def provider(sandbox_url: str) -> Iterator[SandboxProvider]:
    with make_provider(sandbox_url) as adapter:
        yield adapter


@pytest.fixture
def mounted_provider(mounted_public_url: str) -> Iterator[SandboxProvider]:
    with make_provider(sandbox_base_url(mounted_public_url)) as adapter:
        yield adapter


@pytest.fixture
def new_request(receiver: Receiver) -> Callable[..., SessionRequest]:
    """A fresh SessionRequest (new checkout id and key); keywords replace fields."""

    def _new(**overrides: Any) -> SessionRequest:
        number = next(_numbers)
        values: dict[str, Any] = {
            "checkout_id": f"chk_adapter_{number}",
            "amount": 30000,
            "currency": "KRW",
            "description": "Seoul Marathon 2027 - Full course",
            "return_url": f"https://pay.test/return/chk_adapter_{number}?t=abc",
            "cancel_url": f"https://pay.test/checkout/chk_adapter_{number}?t=abc",
            "webhook_url": receiver.url,
            "expires_at": datetime.now(UTC) + timedelta(minutes=30),
            "idempotency_key": f"session-key-{number}",
        }
        values.update(overrides)
        return SessionRequest(**values)

    return _new


def buyer_pays(session_url: str, outcome: str = "succeeded") -> requests.Response:
    """What the buyer's browser does on the hosted page (no credentials)."""
    response = requests.post(
        session_url, data={"outcome": outcome}, allow_redirects=False, timeout=5
    )
    assert response.status_code == 303, response.text
    return response


def configure(base_url: str, **switches: Any) -> dict[str, Any]:
    """``POST /api/test/config``: the sandbox's test switches (down, nextOutcomes, ...)."""
    response = requests.post(
        f"{base_url}/api/test/config",
        json=switches,
        headers={"Authorization": f"Bearer {API_KEY}"},
        timeout=5,
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


# -- a scripted stand-in, for answers the sandbox never gives ----------------------------------


@dataclass
class Scripted:
    """Answers each request with the next queued (status, body, headers); records requests."""

    url: str = ""
    answers: list[tuple[int, str | bytes, dict[str, str]]] = field(default_factory=list)
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, status: int, body: Any = b"", **headers: str) -> None:
        if not isinstance(body, str | bytes):
            body = json.dumps(body)
            headers.setdefault("Content_Type", "application/json")
        self.answers.append((status, body, {k.replace("_", "-"): v for k, v in headers.items()}))

    def __call__(self, environ: Any, start_response: Any) -> Any:
        request = Request(environ)
        with self.lock:
            self.requests.append((request.method, request.path, dict(request.headers)))
            status, body, headers = self.answers.pop(0) if self.answers else (500, b"", {})
        return Response(body, status=status, headers=headers)(environ, start_response)


@pytest.fixture
def scripted() -> Iterator[Scripted]:
    state = Scripted()
    with serving(state) as url:
        state.url = url
        yield state


NewRequest = Callable[..., SessionRequest]


def paid_payment(provider: SandboxProvider, new_request: NewRequest) -> ProviderPayment:
    """A payment the buyer completed on a new session of the real sandbox."""
    session = provider.create_session(new_request())
    buyer_pays(session.redirect_url)
    payment = provider.retrieve_session(session.session_id).last_payment
    assert payment is not None
    return payment
