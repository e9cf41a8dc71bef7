"""The reference platform's return page and sign-in redirect, in process against the real
payment service (SQLite and PostgreSQL): the return URL's signed status picks the wording, the
ledger's callbacks decide the registration, and ``next`` never leaves the site."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import update
from sqlalchemy.orm import Session

from platform_client.demo.app import CALLBACK_PATH
from platform_client.demo.catalog import SEED_EVENT_ID
from platform_client.demo.state import demo_of
from platform_client.demo.status import LATE_PAYMENT_WAIT
from platform_client.ledger import Reservation, Tier
from shared_contracts.events import EventType
from shared_contracts.signing import sign_redirect
from tests.factories import MerchantCredentials
from tests.platform_client.builders import callback_body, signed

PAID_TIER = "tier_full_krw"
REGISTER = f"/events/{SEED_EVENT_ID}/tiers/{PAID_TIER}/register"
MY_REGISTRATIONS = "/my/registrations"


def start_paying(browser: FlaskClient, platform: Flask) -> Reservation:
    """Register for the paid tier (which signs the buyer in); the hold it made."""
    response = browser.post(
        REGISTER, data={"name": "Kim", "email": "kim@example.com", "answer": "M"}
    )
    assert response.status_code == 303, response.get_data(as_text=True)
    with Session(demo_of(platform).engine) as session:
        return session.query(Reservation).one()


def return_page(
    browser: FlaskClient, merchant: MerchantCredentials, hold: Reservation, status: str
) -> str:
    """The page the service's signed return redirect lands on."""
    assert hold.checkout_id is not None
    query = urlencode(
        {
            "return": "success",
            "checkoutId": hold.checkout_id,
            "status": status,
            "sig": sign_redirect(merchant.signing_secret, hold.checkout_id, status),
        }
    )
    response = browser.get(f"/reservations/{hold.id}?{query}")
    assert response.status_code == 200
    return response.get_data(as_text=True)


def call_back(
    browser: FlaskClient, merchant: MerchantCredentials, hold: Reservation, type: EventType
) -> int:
    """Deliver a signed callback about the hold's checkout, as the service does."""
    body = callback_body(
        type, checkoutId=hold.checkout_id, reservationId=hold.id, eventId=SEED_EVENT_ID,
        tierId=PAID_TIER, amount=hold.amount, currency=hold.currency, provider=hold.provider,
    )  # fmt: skip
    headers = signed(body, [merchant.signing_secret], msg_id=f"evt_{type.value}_{hold.id}")
    return browser.post(CALLBACK_PATH, data=body, headers=headers).status_code


def sweep_with_deadline(platform: Flask, hold: Reservation, deadline: datetime) -> None:
    """Move the hold's deadline, then let the platform's sweeper release what is overdue."""
    with Session(demo_of(platform).engine) as session, session.begin():
        session.execute(
            update(Reservation).where(Reservation.id == hold.id).values(expires_at=deadline)
        )
    demo_of(platform).ledger.sweep_expired_holds()


def title(page: str) -> str:
    found = re.search(r'data-field="title">([^<]*)<', page)
    assert found is not None, page
    return found.group(1)


def refreshes(page: str) -> bool:
    return 'http-equiv="refresh"' in page


@pytest.mark.parametrize("status", ["paid", "processing"])
def test_a_payment_returning_after_the_sweep_waits_for_its_callback(
    demo: Flask, merchant: MerchantCredentials, status: str
) -> None:
    browser = demo.test_client()
    hold = start_paying(browser, demo)
    sweep_with_deadline(demo, hold, datetime.now(UTC) - timedelta(seconds=1))

    page = return_page(browser, merchant, hold, status)

    assert 'data-status="expired"' in page
    assert title(page) == "Payment arrived after your hold ended"
    assert "registered if a place" in page and "refunded" in page
    assert "nothing was charged" not in page
    assert refreshes(page)  # until the late callback has been handled
    assert call_back(browser, merchant, hold, EventType.PAID) == 204
    assert title(return_page(browser, merchant, hold, status)) == "You're registered"


def test_a_late_payment_refused_for_a_full_tier_is_never_called_uncharged(
    demo: Flask, merchant: MerchantCredentials
) -> None:
    browser = demo.test_client()
    hold = start_paying(browser, demo)
    sweep_with_deadline(demo, hold, datetime.now(UTC) - timedelta(seconds=1))
    with Session(demo_of(demo).engine) as session, session.begin():
        session.execute(update(Tier).where(Tier.id == PAID_TIER).values(capacity=0))

    assert call_back(browser, merchant, hold, EventType.PAID) == 409  # the service refunds
    page = return_page(browser, merchant, hold, "paid")

    assert title(page) == "Payment arrived after your hold ended"
    assert "nothing was charged" not in page


def test_the_late_payment_page_stops_refreshing_after_a_while(
    demo: Flask, merchant: MerchantCredentials
) -> None:
    browser = demo.test_client()
    hold = start_paying(browser, demo)
    long_ago = datetime.now(UTC) - LATE_PAYMENT_WAIT - timedelta(seconds=1)
    sweep_with_deadline(demo, hold, long_ago)

    page = return_page(browser, merchant, hold, "paid")

    assert title(page) == "Payment arrived after your hold ended"
    assert not refreshes(page)
    assert f'href="{MY_REGISTRATIONS}"' in page


def test_a_released_hold_without_a_payment_hint_is_not_registered(
    demo: Flask, merchant: MerchantCredentials
) -> None:
    browser = demo.test_client()
    hold = start_paying(browser, demo)
    sweep_with_deadline(demo, hold, datetime.now(UTC) - timedelta(seconds=1))

    page = return_page(browser, merchant, hold, "canceled")

    assert title(page) == "You're not registered" and not refreshes(page)


def test_a_processing_return_keeps_the_way_back_to_the_checkout_after_a_decline(
    demo: Flask, merchant: MerchantCredentials
) -> None:
    browser = demo.test_client()
    hold = start_paying(browser, demo)
    resume = f'href="{hold.checkout_url}" data-action="resume-payment"'

    page = return_page(browser, merchant, hold, "processing")
    assert title(page) == "Payment processing"
    assert "confirming your payment" in page and "went through" not in page
    assert resume in page

    assert call_back(browser, merchant, hold, EventType.FAILED) == 204  # attempt 1 of 3
    page = return_page(browser, merchant, hold, "processing")  # what its refresh reloads
    assert 'data-status="pending_payment"' in page and resume in page


def test_a_paid_return_says_so_and_offers_no_second_payment(
    demo: Flask, merchant: MerchantCredentials
) -> None:
    browser = demo.test_client()
    hold = start_paying(browser, demo)

    page = return_page(browser, merchant, hold, "paid")

    assert title(page) == "Payment processing" and "went through" in page
    assert 'data-action="resume-payment"' not in page and refreshes(page)


@pytest.mark.parametrize(
    "target",
    [
        "/\t/evil.example/x",
        "/\n/evil.example/x",
        "/\r\n/evil.example/x",
        "/\x00/evil.example/x",
        "/\x7f/evil.example/x",
        "/\x85/evil.example/x",
        "//evil.example/x",
        "///evil.example/x",
        "/\\evil.example/x",
        "https://evil.example/x",
        "evil.example/x",
        "",
    ],
)
def test_sign_in_never_redirects_off_the_site(demo: Flask, target: str) -> None:
    response = demo.test_client().post(
        "/signin", data={"name": "Kim", "email": "kim@example.com", "next": target}
    )
    assert (response.status_code, response.headers["Location"]) == (303, MY_REGISTRATIONS)


def test_sign_in_returns_to_a_path_on_the_site(demo: Flask) -> None:
    target = f"/events/{SEED_EVENT_ID}/tiers/{PAID_TIER}/register?from=signin"
    response = demo.test_client().post(
        "/signin", data={"name": "Kim", "email": "kim@example.com", "next": target}
    )
    assert (response.status_code, response.headers["Location"]) == (303, target)
