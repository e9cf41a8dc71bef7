"""The reference platform's answers to a buyer who already holds or has a place, and to a
browser whose sign-in changed, in process against the real payment service (SQLite and
PostgreSQL): nobody is sent to pay for a tier they did not ask for, and nobody sees a bare 404
for their own payment."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from platform_client.demo.catalog import SEED_EVENT_ID
from platform_client.demo.state import demo_of
from platform_client.ledger import Registration, Reservation, Tier

KRW_TIER, USD_TIER, FREE_TIER = "tier_full_krw", "tier_full_usd", "tier_10k_free"


def register_url(tier_id: str) -> str:
    return f"/events/{SEED_EVENT_ID}/tiers/{tier_id}/register"


def post_form(
    browser: FlaskClient, tier_id: str, email: str = "kim@example.com", answer: str = "M"
) -> TestResponse:
    return browser.post(
        register_url(tier_id), data={"name": "Kim", "email": email, "answer": answer}
    )


def the_hold(platform: Flask) -> Reservation:
    with Session(demo_of(platform).engine) as session:
        return session.scalars(select(Reservation)).one()


def counts(platform: Flask) -> tuple[int, int, dict[str, int]]:
    """(reservations, registrations, seats taken per tier)."""
    with Session(demo_of(platform).engine) as session:
        reservations = session.scalar(select(func.count()).select_from(Reservation)) or 0
        registrations = session.scalar(select(func.count()).select_from(Registration)) or 0
        taken = {tier_id: seats for tier_id, seats in session.execute(select(Tier.id, Tier.taken))}
        return reservations, registrations, taken


@pytest.mark.parametrize("other_tier", [FREE_TIER, USD_TIER])
def test_a_buyer_holding_one_tier_who_asks_for_another_is_told_not_sent_to_pay(
    demo: Flask, other_tier: str
) -> None:
    browser = demo.test_client()
    first = post_form(browser, KRW_TIER)
    assert first.status_code == 303 and first.location.startswith("http://pay.test/checkout/")
    hold = the_hold(demo)
    before = counts(demo)

    response = post_form(browser, other_tier, answer="XL")

    page = response.get_data(as_text=True)
    assert response.status_code == 409, page
    assert response.location is None  # not sent on to the KRW checkout
    assert 'data-error="holding_other_tier"' in page
    assert '<strong data-field="held-tier">Full course</strong>' in page and "₩30,000" in page
    assert f"until {hold.expires_at.strftime('%H:%M:%S')} UTC" in page
    assert f'href="{first.location}" data-action="resume-payment"' in page
    assert "choose another tier once that hold ends" in page
    assert counts(demo) == before  # nothing held, registered or answered anew


def test_the_same_tier_posted_twice_goes_to_the_same_checkout(demo: Flask) -> None:
    browser = demo.test_client()
    first, second = post_form(browser, KRW_TIER), post_form(browser, KRW_TIER)
    assert (first.status_code, second.status_code) == (303, 303)
    assert second.location == first.location
    assert counts(demo)[0] == 1


def test_a_second_free_registration_links_to_the_first(demo: Flask) -> None:
    browser = demo.test_client()
    first = post_form(browser, FREE_TIER)
    assert first.status_code == 303 and "/registrations/reg_" in first.location

    again = post_form(browser, FREE_TIER)

    page = again.get_data(as_text=True)
    assert again.status_code == 409 and 'data-error="already_registered"' in page
    assert f'href="{first.location}" data-action="show-registration"' in page
    assert browser.get(first.location).status_code == 200


def test_a_payment_page_of_another_sign_in_offers_to_sign_in_again(demo: Flask) -> None:
    browser = demo.test_client()
    assert post_form(browser, KRW_TIER, email="ann@example.com").status_code == 303
    hold = the_hold(demo)
    assert post_form(browser, FREE_TIER, email="bob@example.com").status_code == 303  # now Bob
    page_path = f"/reservations/{hold.id}?return=cancel"

    response = browser.get(page_path)

    page = response.get_data(as_text=True)
    assert response.status_code == 403, page
    assert 'data-error="other_buyer"' in page and "belongs to a different sign-in" in page
    assert f'name="next" value="{page_path}"' in page
    assert "ann@example.com" not in page and "₩30,000" not in page and "Full course" not in page
    signed_in = browser.post(
        "/signin", data={"name": "Ann", "email": "ann@example.com", "next": page_path}
    )
    assert (signed_in.status_code, signed_in.location) == (303, page_path)
    assert f'data-reservation="{hold.id}"' in browser.get(page_path).get_data(as_text=True)


def test_an_unknown_reservation_is_still_not_found(demo: Flask) -> None:
    browser = demo.test_client()
    assert post_form(browser, FREE_TIER).status_code == 303  # signed in
    assert browser.get("/reservations/res_unknown").status_code == 404


def test_the_form_says_another_e_mail_signs_in_as_that_person(demo: Flask) -> None:
    browser = demo.test_client()
    assert "Submitting signs you in" in browser.get(register_url(KRW_TIER)).get_data(as_text=True)
    assert post_form(browser, FREE_TIER, email="ann@example.com").status_code == 303

    page = browser.get(register_url(KRW_TIER)).get_data(as_text=True)

    assert "You are signed in as ann@example.com." in page
    assert "Submitting with another e-mail signs you in as that person." in page
