"""The buyer's path through real processes: serve (API, hosted pages, sandbox PSP) and worker.

A buyer opens checkoutUrl, presses pay, chooses an outcome on the sandbox's page and comes back;
the service sends them to the platform's successUrl/cancelUrl with a signed status, or back to
the checkout page after a decline. The platform's URLs are parsed, never fetched.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import text

from payment_service.db import Base, Database
from payment_service.models import import_all_models
from shared_contracts.signing import verify_redirect
from tests.e2e.buyer import Buyer, Redirect
from tests.e2e.stack import Stack

pytestmark = pytest.mark.e2e

MAX_ATTEMPTS = 3


@pytest.fixture(scope="module")
def stack(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One stack per backend for this module; every test works on its own reservation."""
    running = Stack.start(
        database_url,
        tmp_path_factory.mktemp("stack"),
        PAYMENT_MAX_PAYMENT_ATTEMPTS=str(MAX_ATTEMPTS),
    )
    try:
        yield running
    finally:
        try:
            running.stop()
        finally:
            _empty_tables(database_url)


def _empty_tables(database_url: str) -> None:
    """Leave the session's database as the `db` fixture does for the next module."""
    import_all_models()
    cleaner = Database(database_url)
    try:
        with cleaner.transaction() as session:
            for table in reversed(Base.metadata.sorted_tables):
                session.execute(text(f'DELETE FROM "{table.name}"'))
    finally:
        cleaner.dispose()


@pytest.fixture
def buyer(stack: Stack) -> Iterator[Buyer]:
    stack.mark_logs()  # failures show this test's part of the logs
    browser = Buyer(stack)
    yield browser
    browser.close()


def assert_signed_redirect(
    stack: Stack, redirect: Redirect, target: str, checkout_id: str, status: str
) -> None:
    query = redirect.query
    stack.check(
        redirect.base == f"{stack.platform_url}{target}",
        f"expected a redirect to {target}, got {redirect.location}",
    )
    stack.check(
        (query.get("checkoutId"), query.get("status")) == (checkout_id, status),
        f"expected checkoutId={checkout_id} status={status}: {redirect.location}",
    )
    sig = query.get("sig", "")
    stack.check(
        verify_redirect(stack.signing_secret, checkout_id, status, sig),
        f"sig does not verify: {redirect.location}",
    )
    forged = "paid" if status != "paid" else "failed"
    stack.check(
        not verify_redirect(stack.signing_secret, checkout_id, forged, sig),
        f"sig also verifies a tampered status={forged}",
    )


def checkout_page_of(stack: Stack, redirect: Redirect, checkout_id: str) -> None:
    stack.check(
        redirect.base == f"{stack.url}/checkout/{checkout_id}"
        and redirect.query.get("declined") == "1"
        and redirect.query.get("t"),
        f"expected the checkout page with declined=1, got {redirect.location}",
    )


def test_succeeded_payment_goes_to_success_url_and_is_paid(stack: Stack, buyer: Buyer) -> None:
    created = stack.create_checkout()
    checkout_id = created["checkoutId"]
    stack.check(created["status"] == "open", f"new checkout: {created}")

    page = buyer.open(created["checkoutUrl"])
    stack.check(page.text(data_field="amount"), f"no amount on the checkout page:\n{page.html}")
    provider_url = buyer.press_pay(page)
    stack.check(
        provider_url.startswith(f"{stack.url}/sandbox/pay/sbs_"),
        f"pay did not go to the sandbox's page: {provider_url}",
    )
    return_url = buyer.choose(buyer.open(provider_url), "succeeded")
    stack.check(
        return_url.startswith(f"{stack.url}/checkout/{checkout_id}/return?"),
        f"the sandbox did not send the buyer back to us: {return_url}",
    )
    assert_signed_redirect(stack, Redirect(buyer.follow(return_url)), "/ok", checkout_id, "paid")

    shown = stack.get_checkout(checkout_id)
    payment = shown.get("payment") or {}
    stack.check(
        shown["status"] == "paid" and shown["paidAt"],
        f"API after paying: {shown}",
    )
    stack.check(
        payment.get("paymentId", "").startswith("pay_")
        and payment.get("provider") == "sandbox"
        and payment.get("txId")
        and payment.get("paidAt"),
        f"payment object: {shown}",
    )
    stack.check(
        stack.event_types(checkout_id) == ["ticket_payment.paid"],
        f"events: {stack.event_types(checkout_id)}",
    )

    # The link is still good: it now tells the buyer the payment went through, with no pay button.
    after = buyer.open(created["checkoutUrl"])
    stack.check(
        after.text(data_field="title") == "Payment received" and not after.find(data_action="pay"),
        f"checkout page after paying:\n{after.html}",
    )


def test_declined_payment_returns_to_checkout_page_and_reuses_session(
    stack: Stack, buyer: Buyer
) -> None:
    created = stack.create_checkout()
    checkout_id = created["checkoutId"]
    provider_url = buyer.press_pay(buyer.open(created["checkoutUrl"]))
    redirect = Redirect(buyer.follow(buyer.choose(buyer.open(provider_url), "declined")))
    checkout_page_of(stack, redirect, checkout_id)

    again = buyer.open(redirect.location)
    notice = again.text(data_field="declined") or ""
    stack.check(
        "declined" in notice and f"{MAX_ATTEMPTS - 1} attempts left" in notice,
        f"no decline notice with attempts left on the checkout page:\n{again.html}",
    )
    shown = stack.get_checkout(checkout_id)
    stack.check(
        (shown["status"], shown["attempts"], shown["maxAttempts"]) == ("open", 1, MAX_ATTEMPTS),
        f"API after one decline: {shown}",
    )
    stack.check(
        stack.event_types(checkout_id) == ["ticket_payment.failed"],
        f"events: {stack.event_types(checkout_id)}",
    )

    second = buyer.press_pay(again)
    stack.check(
        second == provider_url,
        f"a second press opened another provider session: {second} != {provider_url}",
    )
    sandbox_page = buyer.open(second)
    stack.check(sandbox_page.find(data_outcome="succeeded"), f"sandbox page:\n{sandbox_page.html}")


def test_three_declines_fail_the_checkout(stack: Stack, buyer: Buyer) -> None:
    created = stack.create_checkout()
    checkout_id = created["checkoutId"]
    page_url = created["checkoutUrl"]
    for attempt in range(1, MAX_ATTEMPTS + 1):
        provider_url = buyer.press_pay(buyer.open(page_url))
        redirect = Redirect(buyer.follow(buyer.choose(buyer.open(provider_url), "declined")))
        if attempt < MAX_ATTEMPTS:
            checkout_page_of(stack, redirect, checkout_id)
            page_url = redirect.location
    assert_signed_redirect(stack, redirect, "/cancel", checkout_id, "failed")

    shown = stack.get_checkout(checkout_id)
    stack.check(
        (shown["status"], shown["attempts"]) == ("failed", MAX_ATTEMPTS),
        f"API after {MAX_ATTEMPTS} declines: {shown}",
    )
    stack.check(
        stack.event_types(checkout_id) == ["ticket_payment.failed"] * MAX_ATTEMPTS,
        f"events: {stack.event_types(checkout_id)}",
    )
    closed = buyer.open(created["checkoutUrl"])
    stack.check(
        closed.text(data_field="title") == "Payment failed" and not closed.find(data_action="pay"),
        f"checkout page after failing:\n{closed.html}",
    )


def test_buyer_cancel_on_provider_page_goes_to_cancel_url_and_keeps_checkout_open(
    stack: Stack, buyer: Buyer
) -> None:
    created = stack.create_checkout()
    checkout_id = created["checkoutId"]
    provider_page = buyer.open(buyer.press_pay(buyer.open(created["checkoutUrl"])))
    cancel = provider_page.find(data_action="cancel")
    stack.check(
        cancel is not None and "buyer_canceled=1" in cancel.attrs.get("href", ""),
        f"no cancel link back to us on the sandbox page:\n{provider_page.html}",
    )
    assert cancel is not None
    redirect = Redirect(buyer.follow(cancel.attrs["href"]))
    assert_signed_redirect(stack, redirect, "/cancel", checkout_id, "canceled")

    shown = stack.get_checkout(checkout_id)
    stack.check(
        (shown["status"], shown["attempts"]) == ("open", 0),
        f"API after the buyer canceled: {shown}",
    )
    stack.check(stack.event_types(checkout_id) == [], f"events: {stack.event_types(checkout_id)}")
    page = buyer.open(created["checkoutUrl"])
    stack.check(page.find(data_action="pay"), f"the buyer cannot pay any more:\n{page.html}")


def test_worker_expires_an_overdue_checkout(stack: Stack, buyer: Buyer) -> None:
    created = stack.create_checkout()
    checkout_id = created["checkoutId"]
    checkout_page = buyer.open(created["checkoutUrl"])  # kept: a tab left open
    provider_url = buyer.press_pay(checkout_page)  # a provider session the sweep must close

    stack.make_overdue(checkout_id)
    stack.poll(
        lambda: (
            stack.stored_status(checkout_id) == "expired"
            and stack.count_events(checkout_id, "ticket_payment.expired") == 1
        ),
        f"the worker to write status expired and a ticket_payment.expired event for {checkout_id}",
    )
    shown = stack.get_checkout(checkout_id)
    stack.check(
        (shown["status"], shown["paidAt"]) == ("expired", None), f"API after expiry: {shown}"
    )
    stack.check(
        stack.event_types(checkout_id) == ["ticket_payment.expired"],
        f"events: {stack.event_types(checkout_id)}",
    )

    page = buyer.open(created["checkoutUrl"])
    stack.check(
        page.text(data_field="title") == "This checkout has expired"
        and not page.find(data_action="pay"),
        f"checkout page after expiry:\n{page.html}",
    )
    # The stale tab's pay button leads back to the checkout page, never to the provider.
    after_press = buyer.press_pay(checkout_page)
    stack.check(
        after_press.startswith(f"{stack.url}/checkout/{checkout_id}?"),
        f"pressing pay on an expired checkout went to {after_press}",
    )
    # The worker closed the provider session before it expired the checkout.
    stack.poll(
        lambda: buyer.status_of(provider_url) == 410,
        "the sandbox session to be expired",
        timeout=10,
    )
