"""The reference platform's registration and sign-in forms against the real payment service
over HTTP (SQLite and PostgreSQL): an e-mail address the forms take is one the service takes,
so a buyer never holds a seat they can never pay for."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from platform_client.demo.catalog import SEED_EVENT_ID
from platform_client.demo.state import demo_of
from platform_client.ledger import Reservation, ReservationStatus, Tier

PAID_TIER = "tier_full_krw"
REGISTER = f"/events/{SEED_EVENT_ID}/tiers/{PAID_TIER}/register"

# Each passed the form's old regex and was refused by the service's customer.email (422).
REFUSED_BY_THE_SERVICE = [
    "lee@example.c",
    "ki(m)@example.com",
    "kim@exa_mple.com",
    "kim@ex..ample.com",
    "kim@-example.com",
]


def register(browser: FlaskClient, email: str) -> tuple[int, str, str]:
    """Post the paid tier's form: (status, Location, page)."""
    response = browser.post(REGISTER, data={"name": "Kim", "email": email, "answer": "M"})
    return response.status_code, response.location or "", response.get_data(as_text=True)


def holds(platform: Flask) -> tuple[int, int]:
    """(reservation rows, seats taken) of the paid tier."""
    with Session(demo_of(platform).engine) as session:
        rows = session.scalar(select(func.count()).select_from(Reservation)) or 0
        return rows, session.get_one(Tier, PAID_TIER).taken


@pytest.mark.parametrize("email", REFUSED_BY_THE_SERVICE)
def test_an_address_the_service_refuses_gets_the_forms_own_error_and_holds_nothing(
    demo: Flask, email: str
) -> None:
    status, location, page = register(demo.test_client(), email)
    assert (status, location) == (422, ""), page
    assert 'data-error="email"' in page and 'data-error="name"' not in page
    assert "Payments are unavailable" not in page
    assert holds(demo) == (0, 0)  # no reservation row, not even a released one


@pytest.mark.parametrize("email", REFUSED_BY_THE_SERVICE)
def test_the_sign_in_form_refuses_the_same_addresses(demo: Flask, email: str) -> None:
    response = demo.test_client().post("/signin", data={"name": "Kim", "email": email})
    assert response.status_code == 422
    assert 'data-error="email"' in response.get_data(as_text=True)


def test_a_normal_address_is_sent_on_to_the_checkout(demo: Flask) -> None:
    status, location, page = register(demo.test_client(), "kim.lee+run@example.co.kr")
    assert status == 303, page
    assert location.startswith("http://pay.test/checkout/chk_")
    with Session(demo_of(demo).engine) as session:
        held = session.scalars(select(Reservation)).one()
        assert held.status == ReservationStatus.PENDING_PAYMENT
        assert held.email == "kim.lee+run@example.co.kr" and held.checkout_id is not None
    assert holds(demo) == (1, 1)
