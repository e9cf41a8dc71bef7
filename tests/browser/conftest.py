"""A real browser for the hosted pages: Debian's Chromium driven by Playwright.

Playwright cannot download its own browser build here, so the test uses the system's
``/usr/bin/chromium`` (``apt-get install chromium``; ``.ci/run`` installs it in CI). A missing
browser fails the run, never skips it: the paid path must be seen in a browser.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Page,
    Playwright,
    Request,
    ViewportSize,
    sync_playwright,
)

CHROMIUM = Path(os.environ.get("TEST_CHROMIUM", "/usr/bin/chromium"))
IN_CI = os.environ.get("CI", "").lower() == "true"
# A closed network: no QUIC, no update checks, no background fetches that would hang or warn.
CHROMIUM_ARGS = [
    "--no-sandbox",  # runs as root in CI
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"
PHONE: ViewportSize = {"width": 390, "height": 844}
TIMEOUT_MS = 30_000  # a shared 2-core machine can be slow; every wait is still bounded


@pytest.fixture(scope="session")
def playwright_driver() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
def browser(playwright_driver: Playwright) -> Iterator[Browser]:
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        where = "CI=true, and .ci/run should have installed it" if IN_CI else "this machine"
        pytest.fail(
            f"Chromium is missing at {CHROMIUM} ({where}). Install Debian's browser with "
            "`sudo apt-get update && sudo apt-get install -y chromium` "
            "(never `playwright install`: browser downloads are not possible here).",
            pytrace=False,
        )
    launched = playwright_driver.chromium.launch(
        executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
    )
    try:
        yield launched
    finally:
        launched.close()


@pytest.fixture
def artifacts_dir(database_url: str) -> Path:
    """test-artifacts/browser/<backend>/ at the repo root (git-ignored), for the screenshots."""
    backend = "postgresql" if database_url.startswith("postgresql") else "sqlite"
    path = ARTIFACTS / backend
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def phone(browser: Browser) -> Iterator[Page]:
    """A page in a phone-sized, touch-enabled browser context."""
    context = browser.new_context(
        viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True, locale="en-US"
    )
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    try:
        yield page
    finally:
        page.close()
        context.close()


def watch(page: Page) -> list[str]:
    """What the pages do in the browser that they must not: script errors, console errors and
    requests that would leave this machine; the returned list fills as the page runs."""
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))

    def console_error(message: ConsoleMessage) -> None:
        # Chromium asks every site for /favicon.ico on its own; the pages do not link one.
        if message.type == "error" and not message.location.get("url", "").endswith("/favicon.ico"):
            problems.append(f"console error: {message.text} ({message.location.get('url')})")

    def not_local(request: Request) -> None:
        if urlsplit(request.url).hostname not in ("127.0.0.1", "localhost"):
            problems.append(f"request leaves the machine: {request.url}")

    page.on("console", console_error)
    page.on("request", not_local)
    return problems
