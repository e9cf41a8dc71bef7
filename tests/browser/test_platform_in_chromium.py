"""A buyer registers for a paid tier on the reference platform in a real browser.

Real processes (payment service, worker, `python -m platform_client.demo serve`) and Debian's
Chromium, phone-sized: event page -> form -> hosted checkout -> sandbox -> the platform's
"payment processing" page, which reloads itself until the callback has landed and says
"You're registered". Screenshots land in test-artifacts/browser/<backend>/platform-*.png.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page, expect

from tests.browser.conftest import watch
from tests.e2e.platform_stack import KRW_TIER, SEED_EVENT, PlatformStack, running_platform

pytestmark = pytest.mark.e2e

CONFIRM_TIMEOUT_MS = 30_000  # the callback's round trip plus a 2 s reload or two


@pytest.fixture
def platform(database_url: str, tmp_path: Path) -> Iterator[PlatformStack]:
    with running_platform(database_url, tmp_path) as running:
        yield running


def test_buyer_registers_for_a_paid_tier_in_chromium(
    platform: PlatformStack, phone: Page, artifacts_dir: Path
) -> None:
    stack = platform.stack
    problems = watch(phone)

    # 1. The event page: tiers with prices in their currencies and places left.
    phone.goto(f"{platform.url}/events/{SEED_EVENT}")
    expect(phone.get_by_role("heading", name="Seoul Marathon 2027")).to_be_visible()
    krw = phone.locator(f'[data-tier="{KRW_TIER}"]')
    expect(krw.locator('[data-field="price"]')).to_have_text("₩30,000")
    expect(phone.locator('[data-tier="tier_full_usd"] [data-field="price"]')).to_have_text("$45.00")
    expect(phone.locator('[data-tier="tier_10k_free"] [data-field="price"]')).to_have_text("Free")
    seats_before = int(krw.get_attribute("data-seats-left") or "-1")
    phone.screenshot(path=artifacts_dir / "platform-1-event.png", full_page=True)

    # 2. The form: who is registering, and the tier's question.
    krw.locator('[data-action="register"]').click()
    phone.get_by_label("Name").fill("Kim Min-jun")
    phone.get_by_label("E-mail").fill("minjun@example.com")
    phone.get_by_label("T-shirt size").fill("M")
    phone.screenshot(path=artifacts_dir / "platform-2-form.png", full_page=True)
    phone.locator('button[data-action="register"]').click()

    # 3. The hosted checkout, then the sandbox provider: pay.
    try:
        phone.wait_for_url(f"{stack.url}/checkout/**")
    except PlaywrightError:
        phone.screenshot(path=artifacts_dir / "platform-failed.png", full_page=True)
        page = phone.content()[:3000]
        raise platform.fail(f"no checkout after the form: {phone.url}\n{page}") from None
    expect(phone.locator('[data-field="amount"]')).to_have_text("₩30,000")
    phone.screenshot(path=artifacts_dir / "platform-3-checkout.png", full_page=True)
    phone.locator('[data-action="pay"]').click()
    phone.wait_for_url(f"{stack.url}/sandbox/**")
    phone.locator('[data-outcome="succeeded"]').click()

    # 4. Back on the platform: "payment processing" until the callback confirms it.
    phone.wait_for_url(lambda url: url.startswith(f"{platform.url}/reservations/res_"))
    phone.screenshot(path=artifacts_dir / "platform-4-return.png", full_page=True)
    confirmed = phone.locator('[data-status="confirmed"]')
    expect(confirmed).to_be_visible(timeout=CONFIRM_TIMEOUT_MS)
    expect(confirmed.get_by_role("heading")).to_have_text("You're registered")
    phone.screenshot(path=artifacts_dir / "platform-5-registered.png", full_page=True)

    # 5. My registrations lists it, and the event page counts the place.
    phone.locator('[data-action="my-registrations"]').click()
    registration = phone.locator(f'[data-registration][data-tier="{KRW_TIER}"]')
    expect(registration).to_be_visible()
    expect(registration).to_contain_text("T-shirt size")
    phone.screenshot(path=artifacts_dir / "platform-6-my-registrations.png", full_page=True)
    phone.goto(f"{platform.url}/events/{SEED_EVENT}")
    expect(phone.locator(f'[data-tier="{KRW_TIER}"]')).to_have_attribute(
        "data-seats-left", str(seats_before - 1)
    )
    assert problems == [], problems
