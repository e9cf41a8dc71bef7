"""A buyer pays in a real browser: checkout page -> sandbox provider -> back to the platform.

The whole stack runs as real processes (migrations, a merchant from the CLI, `payment-service
serve` with the sandbox mounted), a tiny platform stand-in answers the success and cancel
URLs, and Debian's Chromium (phone-sized) clicks through the paid path. Screenshots of every
page land in test-artifacts/browser/<backend>/ so a person can see what a buyer sees.
"""

from __future__ import annotations

import html
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from playwright.sync_api import Page, expect

from shared_contracts.signing import verify_redirect
from tests.browser.conftest import watch
from tests.e2e.processes import BIN, Server, free_port, run_cli, service_env

pytestmark = pytest.mark.e2e

ORDER_NAME = "Seoul Marathon 2027 - Full course"
AMOUNT = 30000
AMOUNT_TEXT = "₩30,000"


@dataclass
class Platform:
    """The event platform's side: a page for the buyer to land on, and a callback receiver."""

    httpd: ThreadingHTTPServer
    thread: threading.Thread
    callbacks: list[bytes] = field(default_factory=list)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}"


def _platform_handler(platform_callbacks: list[bytes]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            if parts.path not in ("/ok", "/cancel"):
                self.send_error(404)
                return
            query = parse_qs(parts.query)
            rows = "".join(
                f"<tr><th>{html.escape(k)}</th><td data-query='{html.escape(k)}'>"
                f"{html.escape(v[0])}</td></tr>"
                for k, v in sorted(query.items())
            )
            heading = "Payment received" if parts.path == "/ok" else "Payment canceled"
            body = (
                "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
                "<meta name='viewport' content='width=device-width, initial-scale=1'>"
                f"<title>{heading} · Race platform</title>"
                "<style>body{font-family:system-ui,sans-serif;margin:24px}"
                "td{word-break:break-all;padding:4px}th{text-align:left;padding:4px}</style>"
                f"</head><body><h1>{heading}</h1><p>Race platform stand-in</p>"
                f"<table>{rows}</table></body></html>"
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            platform_callbacks.append(self.rfile.read(length))
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:  # quiet under pytest
            pass

    return Handler


@pytest.fixture
def platform() -> Iterator[Platform]:
    callbacks: list[bytes] = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _platform_handler(callbacks))
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, name="platform-stand-in", daemon=True)
    thread.start()
    try:
        yield Platform(httpd, thread, callbacks)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


@pytest.fixture
def stack(
    database_url: str, db: object, tmp_path: Path, platform: Platform
) -> Iterator[tuple[Server, dict[str, str]]]:
    """`payment-service serve` with the sandbox, and a merchant that may send buyers to `platform`."""
    port = free_port()
    env = service_env(
        database_url,
        PAYMENT_PUBLIC_URL=f"http://127.0.0.1:{port}",
        SANDBOX_DATABASE_URL=f"sqlite:///{tmp_path / 'sandbox.db'}",
        PAYMENT_ALLOW_PRIVATE_CALLBACKS="1",
    )
    upgraded = run_cli(["db", "upgrade"], env)
    assert upgraded.returncode == 0, upgraded.stderr
    created = run_cli(
        ["merchants", "create", "--name", "Seoul Runners Club",
         "--callback-origin", platform.url, "--redirect-origin", platform.url,
         "--allow-http", "--json"],
        env,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    merchant = json.loads(created.stdout)
    server = Server(
        [str(BIN / "payment-service"), "serve", "--port", str(port),
         "--workers", "1", "--threads", "8"],
        env, port, tmp_path / "serve.log",
    )  # fmt: skip
    server.start()
    try:
        yield server, merchant
    finally:
        server.stop()


def test_buyer_pays_in_chromium_and_returns_to_the_platform(
    stack: tuple[Server, dict[str, str]], platform: Platform, phone: Page, artifacts_dir: Path
) -> None:
    server, merchant = stack
    api = {"Authorization": f"Bearer {merchant['apiKey']}"}
    response = requests.post(
        server.url + "/v1/ticket-checkouts",
        json={
            "reservationId": "res_browser_1", "eventId": "evt_42", "tierId": "tier_full",
            "orderName": ORDER_NAME, "amount": AMOUNT, "currency": "KRW",
            "customer": {"platformUserId": "u_9", "name": "Kim", "email": "kim@example.com"},
            "successUrl": f"{platform.url}/ok", "cancelUrl": f"{platform.url}/cancel",
            "callbackUrl": f"{platform.url}/hooks", "provider": "sandbox",
        },
        headers={**api, "Idempotency-Key": "browser-test-1"},
        timeout=10,
    )  # fmt: skip
    assert response.status_code == 201, response.text
    checkout = response.json()
    checkout_id = checkout["checkoutId"]

    # What the pages do in the browser: no script errors, nothing fetched from outside this machine.
    problems = watch(phone)

    # 1. The checkout page: what is bought, for how much, and one button to pay.
    phone.goto(checkout["checkoutUrl"])
    expect(phone.get_by_role("heading", name=ORDER_NAME)).to_be_visible()
    expect(phone.locator('[data-field="amount"]')).to_have_text(AMOUNT_TEXT)
    expect(phone.locator('[data-action="pay"]')).to_be_visible()
    expect(phone.locator('[data-action="pay"]')).to_contain_text(AMOUNT_TEXT)
    phone.screenshot(path=artifacts_dir / "checkout-page.png", full_page=True)

    # 2. The provider's page (the sandbox): the same amount, and the outcome buttons.
    phone.locator('[data-action="pay"]').click()
    phone.wait_for_url(f"{server.url}/sandbox/**")
    expect(phone.get_by_text(ORDER_NAME).first).to_be_visible()
    expect(phone.locator(".amount")).to_have_text(AMOUNT_TEXT)
    expect(phone.locator('[data-outcome="succeeded"]')).to_be_visible()
    phone.screenshot(path=artifacts_dir / "sandbox-page.png", full_page=True)

    # 3. Pay: the service asks the provider, then sends the buyer to the platform's successUrl.
    phone.locator('[data-outcome="succeeded"]').click()
    phone.wait_for_url(lambda url: url.startswith(f"{platform.url}/ok?"))
    query = parse_qs(urlsplit(phone.url).query)
    assert query["checkoutId"] == [checkout_id]
    assert query["status"] == ["paid"]
    assert verify_redirect(merchant["signingSecret"], checkout_id, "paid", query["sig"][0])
    assert not verify_redirect(merchant["signingSecret"], checkout_id, "failed", query["sig"][0])
    expect(phone.get_by_role("heading", name="Payment received")).to_be_visible()
    phone.screenshot(path=artifacts_dir / "platform-return.png", full_page=True)

    # 4. The redirect was only a hint: the API says the checkout is paid.
    fetched = requests.get(
        f"{server.url}/v1/ticket-checkouts/{checkout_id}", headers=api, timeout=10
    )
    assert fetched.status_code == 200, fetched.text
    assert fetched.json()["status"] == "paid"
    assert fetched.json()["payment"]["provider"] == "sandbox"

    assert problems == [], problems
