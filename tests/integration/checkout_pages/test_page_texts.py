"""What the pages say: time left on long checkouts, late payments, and whom the buyer pays."""

from __future__ import annotations

from datetime import timedelta

from payment_service.db import utcnow
from tests.integration.checkout_pages.conftest import MERCHANT


def test_a_long_checkout_shows_hours_and_the_date(client, created, set_checkout):
    expires = utcnow() + timedelta(hours=23, minutes=59)
    set_checkout(created.checkout_id, expires_at=expires)
    html = client.get(created.path()).text
    assert "held for 23 h 59 min more" in html and "1439" not in html
    today = expires.date() == utcnow().date()
    day = "" if today else f"{expires.day} {expires:%b} "
    assert f"(until {day}{expires:%H:%M} UTC)" in html


def test_a_late_payment_does_not_promise_the_ticket(client, created, set_checkout):
    set_checkout(created.checkout_id, status="paid", late=True)
    html = client.get(created.path()).text
    assert "arrived after this checkout had closed" in html
    assert "either confirm your ticket or refund your payment in full" in html
    assert "Your ticket is being confirmed" not in html


def test_an_on_time_payment_says_the_ticket_is_being_confirmed(client, created, set_checkout):
    set_checkout(created.checkout_id, status="paid")
    assert "Your ticket is being confirmed" in client.get(created.path()).text


def test_a_status_page_names_the_merchant_in_its_footer(client, created, set_checkout):
    set_checkout(created.checkout_id, status="expired")
    html = client.get(created.path()).text
    assert f"you are paying {MERCHANT}" in html and "the event organiser" not in html
