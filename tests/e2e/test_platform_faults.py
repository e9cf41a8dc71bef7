"""The reference platform when things go wrong between the processes: a payment that arrives
after its hold was swept and its place sold, and a platform that is down when the callback is
due. Real processes, only HTTP between them (see test_platform_paths for the stack).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.buyer import Redirect
from tests.e2e.platform_buyer import PlatformBuyer, checkout_id_of
from tests.e2e.platform_stack import PlatformStack, running_platform

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def platform(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PlatformStack]:
    with running_platform(database_url, tmp_path_factory.mktemp("platform")) as running:
        yield running


@pytest.fixture
def buyers(platform: PlatformStack) -> Iterator[tuple[PlatformBuyer, PlatformBuyer]]:
    platform.stack.mark_logs()
    first, second = PlatformBuyer(platform), PlatformBuyer(platform)
    yield first, second
    first.close()
    second.close()


def test_late_payment_for_a_place_sold_again_is_refunded(
    platform: PlatformStack, buyers: tuple[PlatformBuyer, PlatformBuyer]
) -> None:
    stack = platform.stack
    late, quick = buyers
    tier = platform.add_tier(price=30000, capacity=1)
    late_checkout = late.start_registration(tier)
    late_id = checkout_id_of(late_checkout)
    late_reservation = stack.get_checkout(late_id)["reservationId"]
    late_page = f"{platform.url}/reservations/{late_reservation}"
    # The buyer reaches the provider's page, then leaves the tab open past the hold's end.
    provider_url = late.press_pay(late.open(late_checkout))

    platform.make_hold_overdue(late_reservation)  # the platform's sweeper releases it
    late.wait_for_status(late_page, "expired")
    platform.check(late.seats_left(tier) == 1, "the swept hold kept its place")

    quick_redirect = quick.pay(quick.start_registration(tier), "succeeded")
    quick.wait_for_status(quick_redirect.location, "confirmed")
    platform.check(quick.seats_left(tier) == 0, "the second buyer's place is not counted")

    # The checkout is still open at the service (its own deadline is minutes away): pay it.
    platform.check(stack.get_checkout(late_id)["status"] == "open", "the checkout is not open")
    Redirect(late.follow(late.choose(late.open(provider_url), "succeeded")))
    refunded = stack.poll(
        lambda: stack.get_checkout(late_id)["status"] == "refunded",
        f"{late_id} to be refunded after the platform refused the late payment",
        timeout=30,
    )
    platform.check(refunded, "not refunded")
    paid = [d for kind, d in platform.deliveries(late_id) if kind == "ticket_payment.paid"]
    platform.check(
        len(paid) == 1 and paid[0]["status"] == "rejected" and paid[0]["lastStatusCode"] == 409,
        f"the paid callback should be rejected with 409: {platform.deliveries(late_id)}",
    )
    page = late.wait_for_status(late_page, "expired")
    platform.check(
        page.text(data_field="title") == "You're not registered", f"late buyer:\n{page.html}"
    )
    platform.check(late.registrations() == [], "the late buyer was registered")
    platform.check([r["tier"] for r in quick.registrations()] == [tier], "the seat changed hands")
    platform.check(late.seats_left(tier) == 0, "capacity changed")


def test_platform_down_when_the_callback_is_due_registers_once_it_is_back(
    platform: PlatformStack, buyers: tuple[PlatformBuyer, PlatformBuyer]
) -> None:
    stack = platform.stack
    buyer, _ = buyers
    tier = platform.add_tier(price=4500, currency="USD", capacity=3)
    checkout_url = buyer.start_registration(tier)
    checkout_id = checkout_id_of(checkout_url)

    platform.stop_platform()
    try:
        redirect = buyer.pay(checkout_url, "succeeded")  # the return page is down too
        platform.check(
            redirect.query.get("status") == "paid", f"return redirect: {redirect.location}"
        )

        def failed_attempts() -> int | None:
            found = platform.deliveries(checkout_id)
            pending = [d for kind, d in found if kind == "ticket_payment.paid"]
            if pending and pending[0]["status"] == "pending" and pending[0]["attempts"] >= 2:
                return int(pending[0]["attempts"])
            return None

        stack.poll(failed_attempts, "two failed callback attempts", timeout=20)
    finally:
        platform.start_platform()

    page = buyer.wait_for_status(redirect.location, "confirmed", timeout=40)
    platform.check(page.text(data_field="title") == "You're registered", page.html)
    platform.check([r["tier"] for r in buyer.registrations()] == [tier], "not registered")
    platform.check(buyer.seats_left(tier) == 2, "the place is not counted once")
    delivered = [d for kind, d in platform.deliveries(checkout_id) if kind == "ticket_payment.paid"]
    platform.check(
        len(delivered) == 1
        and delivered[0]["status"] == "delivered"
        and delivered[0]["attempts"] >= 3,
        f"the retried callback: {delivered}",
    )


def test_late_payment_with_the_place_still_free_is_registered(
    platform: PlatformStack, buyers: tuple[PlatformBuyer, PlatformBuyer]
) -> None:
    stack = platform.stack
    buyer, _ = buyers
    tier = platform.add_tier(price=30000, capacity=1)
    checkout_url = buyer.start_registration(tier)
    checkout_id = checkout_id_of(checkout_url)
    reservation_id = stack.get_checkout(checkout_id)["reservationId"]
    reservation_page = f"{platform.url}/reservations/{reservation_id}"
    provider_url = buyer.press_pay(buyer.open(checkout_url))
    platform.make_hold_overdue(reservation_id)
    buyer.wait_for_status(reservation_page, "expired")
    platform.check(buyer.seats_left(tier) == 1, "the swept hold kept its place")

    Redirect(buyer.follow(buyer.choose(buyer.open(provider_url), "succeeded")))
    page = buyer.wait_for_status(reservation_page, "confirmed")
    platform.check(page.text(data_field="title") == "You're registered", page.html)
    platform.check(buyer.seats_left(tier) == 0, "the free place was not taken again")
    platform.check(stack.get_checkout(checkout_id)["status"] == "paid", "service: not paid")
