"""The reference platform and the payment service as real processes, the buyer's paths.

serve + worker (payment service, sandbox PSP under /sandbox) and `python -m platform_client.demo
serve` on the merchant's platform origin, each with its own database; a buyer without
JavaScript goes event page -> form -> checkout -> sandbox -> back to the platform's
"payment processing" page, which says "You're registered" only once the ledger has the
verified callback.
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlencode

import pytest

from shared_contracts.signing import sign_redirect
from tests.e2e.buyer import Page, Redirect
from tests.e2e.platform_buyer import PlatformBuyer, checkout_id_of
from tests.e2e.platform_stack import FREE_TIER, KRW_TIER, PlatformStack, running_platform

pytestmark = pytest.mark.e2e

MAX_ATTEMPTS = 3


@pytest.fixture(scope="module")
def platform(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PlatformStack]:
    """One platform and payment service per backend; each test uses its own buyers and tiers."""
    with running_platform(
        database_url,
        tmp_path_factory.mktemp("platform"),
        PAYMENT_MAX_PAYMENT_ATTEMPTS=str(MAX_ATTEMPTS),
    ) as running:
        yield running


@pytest.fixture
def buyer(platform: PlatformStack) -> Iterator[PlatformBuyer]:
    platform.stack.mark_logs()
    browser = PlatformBuyer(platform)
    yield browser
    browser.close()


def title(page: Page) -> str | None:
    return page.text(data_field="title")


def test_free_tier_registers_at_once(platform: PlatformStack, buyer: PlatformBuyer) -> None:
    before = buyer.seats_left(FREE_TIER)
    location = buyer.start_registration(FREE_TIER, answer="L")
    platform.check(
        location.startswith(f"{platform.url}/registrations/reg_"),
        f"a free tier should land on the registration, not {location}",
    )
    page = buyer.open(location)
    platform.check(
        page.find(data_status="confirmed") and title(page) == "You're registered",
        f"registration page:\n{page.html}",
    )
    platform.check(page.find(data_answer="") and "L" in page.html, "the answer is not shown")
    platform.check(buyer.seats_left(FREE_TIER) == before - 1, "the free place was not taken")
    mine = buyer.registrations()
    platform.check(
        [(r["event"], r["tier"]) for r in mine] == [("evt_seoul_marathon_2027", FREE_TIER)],
        f"my registrations: {mine}",
    )

    again = buyer.post_registration(FREE_TIER)
    platform.check(
        again.status_code == 409 and 'data-error="already_registered"' in again.text,
        f"a second registration: {again.status_code} {again.text[:500]}",
    )
    platform.check(buyer.seats_left(FREE_TIER) == before - 1, "the refused try took a place")


def test_paid_tier_is_registered_by_the_callback_not_the_redirect(
    platform: PlatformStack, buyer: PlatformBuyer
) -> None:
    stack = platform.stack
    before = buyer.seats_left(KRW_TIER)
    checkout_url = buyer.start_registration(KRW_TIER, answer="S")
    platform.check(
        checkout_url.startswith(f"{stack.url}/checkout/chk_"),
        f"a paid tier should go to the hosted checkout, not {checkout_url}",
    )
    checkout_id = checkout_id_of(checkout_url)
    created = stack.get_checkout(checkout_id)
    platform.check(
        (created["status"], created["amount"], created["currency"]) == ("open", 30000, "KRW"),
        f"checkout: {created}",
    )
    reservation_id = created["reservationId"]
    platform.check(buyer.seats_left(KRW_TIER) == before - 1, "no place held while paying")
    platform.check(
        buyer.start_registration(KRW_TIER) == checkout_url, "a double submit made a second hold"
    )
    platform.check(buyer.seats_left(KRW_TIER) == before - 1, "a double submit took a place")

    # A correctly signed "paid" redirect for an unpaid checkout changes the wording only.
    signed = urlencode({"return": "success", "checkoutId": checkout_id, "status": "paid",
                        "sig": sign_redirect(stack.signing_secret, checkout_id, "paid")})  # fmt: skip
    hinted = buyer.open(f"{platform.url}/reservations/{reservation_id}?{signed}")
    card = hinted.find(data_reservation=reservation_id)
    platform.check(
        card is not None
        and (card.attrs["data-status"], card.attrs["data-hint"]) == ("pending_payment", "paid")
        and title(hinted) == "Payment processing"
        and hinted.find(http_equiv="refresh"),
        f"a redirect alone must not confirm:\n{hinted.html}",
    )
    forged = buyer.open(
        f"{platform.url}/reservations/{reservation_id}?checkoutId={checkout_id}&status=paid&sig=x"
    )
    platform.check(
        forged.find(data_reservation=reservation_id, data_hint="", data_status="pending_payment"),
        f"a forged sig gave a hint:\n{forged.html}",
    )

    redirect = buyer.pay(checkout_url, "succeeded")
    platform.check(
        redirect.base == f"{platform.url}/reservations/{reservation_id}"
        and redirect.query.get("status") == "paid"
        and redirect.query.get("return") == "success",
        f"the buyer should come back to the processing page: {redirect.location}",
    )
    page = buyer.wait_for_status(redirect.location, "confirmed")
    platform.check(
        title(page) == "You're registered" and not page.find(http_equiv="refresh"),
        f"confirmed page:\n{page.html}",
    )
    mine = buyer.registrations()
    platform.check([r["tier"] for r in mine] == [KRW_TIER], f"my registrations: {mine}")
    platform.check(buyer.seats_left(KRW_TIER) == before - 1, "the paid place is not counted once")
    platform.check(stack.get_checkout(checkout_id)["status"] == "paid", "service: not paid")
    delivered = platform.deliveries(checkout_id)
    platform.check(
        [(kind, d["status"]) for kind, d in delivered] == [("ticket_payment.paid", "delivered")],
        f"callbacks: {delivered}",
    )


def test_three_declines_release_the_hold(platform: PlatformStack, buyer: PlatformBuyer) -> None:
    tier = platform.add_tier(price=4500, currency="USD", capacity=2)
    checkout_url = buyer.start_registration(tier)
    platform.check(buyer.seats_left(tier) == 1, "no place held")
    page_url = checkout_url
    for attempt in range(1, MAX_ATTEMPTS + 1):
        provider_url = buyer.press_pay(buyer.open(page_url))
        redirect = Redirect(buyer.follow(buyer.choose(buyer.open(provider_url), "declined")))
        if attempt < MAX_ATTEMPTS:
            page_url = redirect.location  # the checkout page again, "declined, N attempts left"
            platform.check(buyer.seats_left(tier) == 1, f"hold lost after decline {attempt}")
    platform.check(
        redirect.query.get("status") == "failed" and redirect.query.get("return") == "cancel",
        f"after the last decline: {redirect.location}",
    )
    page = buyer.wait_for_status(redirect.location, "released")
    platform.check(title(page) == "You're not registered", f"released page:\n{page.html}")
    platform.check(buyer.seats_left(tier) == 2, "the place did not come back")
    platform.check(buyer.registrations() == [], "a declined buyer is registered")


def test_expiry_releases_the_hold(platform: PlatformStack, buyer: PlatformBuyer) -> None:
    stack = platform.stack
    tier = platform.add_tier(price=30000, capacity=1)
    checkout_url = buyer.start_registration(tier)
    checkout_id = checkout_id_of(checkout_url)
    reservation_id = stack.get_checkout(checkout_id)["reservationId"]
    other = PlatformBuyer(platform)
    try:
        card = other.event_page().find(data_tier=tier)
        platform.check(
            card is not None
            and card.attrs["data-state"] == "sold_out"
            and not other.event_page().find(data_action="register", data_tier_id=tier),
            "the held place is offered again",
        )
        refused = other.post_registration(tier)
        platform.check(
            refused.status_code == 409 and 'data-error="sold_out"' in refused.text,
            f"the held place was sold twice: {refused.status_code} {refused.text[:500]}",
        )
        stack.make_overdue(checkout_id)  # the worker expires it and calls the platform back
        page = buyer.wait_for_status(f"{platform.url}/reservations/{reservation_id}", "expired")
        platform.check(title(page) == "You're not registered", f"expired page:\n{page.html}")
        platform.check(
            [(kind, d["status"]) for kind, d in platform.deliveries(checkout_id)]
            == [("ticket_payment.expired", "delivered")],
            f"callbacks: {platform.deliveries(checkout_id)}",
        )
        platform.check(buyer.seats_left(tier) == 1, "the expired hold kept its place")
        platform.check(
            other.start_registration(tier).startswith(f"{stack.url}/checkout/"),
            "the freed place could not be taken",
        )
    finally:
        other.close()


def test_leaving_the_provider_page_keeps_the_hold_and_offers_the_checkout_again(
    platform: PlatformStack, buyer: PlatformBuyer
) -> None:
    tier = platform.add_tier(price=30000, capacity=2)
    checkout_url = buyer.start_registration(tier)
    provider_page = buyer.open(buyer.press_pay(buyer.open(checkout_url)))
    cancel = provider_page.find(data_action="cancel")
    platform.check(cancel is not None, f"no cancel link:\n{provider_page.html}")
    assert cancel is not None
    redirect = Redirect(buyer.follow(cancel.attrs["href"]))
    platform.check(
        redirect.query.get("status") == "canceled" and redirect.query.get("return") == "cancel",
        f"the cancel return: {redirect.location}",
    )
    page = buyer.open(redirect.location)
    resume = page.find(data_action="resume-payment")
    platform.check(
        page.find(data_status="pending_payment", data_hint="canceled")
        and title(page) == "Payment not completed"
        and resume is not None
        and resume.attrs["href"] == checkout_url,
        f"the page after leaving the provider:\n{page.html}",
    )
    platform.check(buyer.seats_left(tier) == 1, "the hold was dropped on a cancel redirect")
