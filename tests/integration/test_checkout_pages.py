"""The hosted checkout page: token checks, what the buyer sees, and the pay action's failures."""

from datetime import timedelta

import pytest
from sqlalchemy import update

from payment_service.checkouts.models import Checkout
from payment_service.checkouts.tokens import make_token
from payment_service.db import utcnow
from tests.factories import checkout_payload, make_merchant


@pytest.fixture
def created(app, client, db):
    creds = make_merchant(db)
    response = client.post("/v1/ticket-checkouts", json=checkout_payload(amount=30000, currency="KRW"),
                           headers={**creds.auth, "Idempotency-Key": "k"})  # fmt: skip
    body = response.get_json()
    return body["checkoutId"], body["checkoutUrl"].removeprefix("http://pay.test"), creds


def set_status(db, checkout_id, **values):
    with db.transaction() as session:
        session.execute(update(Checkout).where(Checkout.id == checkout_id).values(**values))


def test_the_page_shows_order_amount_time_and_a_pay_form(client, created):
    _, path, _ = created
    page = client.get(path)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Seoul Marathon 2027 - Full course" in html
    assert "₩30,000" in html
    assert 'data-action="pay"' in html and 'method="post"' in html
    assert "15 more minutes" in html
    assert 'data-action="back"' in html and "buyer_canceled=1" in html
    assert "<script" not in html  # works without JavaScript


@pytest.mark.parametrize("token", ["", "garbage", "WyJjaGtfb3RoZXIiLDk5OTk5OTk5OTld.bad"])
def test_a_bad_or_tampered_token_is_a_403_page_not_a_traceback(client, created, token):
    checkout_id, _, _ = created
    page = client.get(f"/checkout/{checkout_id}?t={token}")
    assert page.status_code == 403
    assert "This link is not valid" in page.get_data(as_text=True)


def test_a_token_for_another_checkout_is_refused(client, created, settings):
    checkout_id, _, _ = created
    other = make_token(settings.secret_key, "chk_other", utcnow() + timedelta(minutes=5))
    assert client.get(f"/checkout/{checkout_id}?t={other}").status_code == 403
    assert client.post(f"/checkout/{checkout_id}/pay", data={"t": other}).status_code == 403


@pytest.mark.parametrize(
    ("values", "title"),
    [
        ({"status": "paid"}, "Payment received"),
        ({"status": "canceled"}, "This checkout was canceled"),
        ({"status": "failed", "attempts": 3}, "Payment failed"),
        ({"status": "expired"}, "This checkout has expired"),
    ],
)
def test_closed_checkouts_get_their_own_page(client, db, created, values, title):
    checkout_id, path, _ = created
    set_status(db, checkout_id, **values)
    html = client.get(path).get_data(as_text=True)
    assert title in html
    assert 'data-action="pay"' not in html
    assert "checkoutId=" in html and "sig=" in html  # the way back is a signed redirect


def test_an_overdue_checkout_shows_the_expired_page(client, db, created):
    checkout_id, path, _ = created
    set_status(db, checkout_id, expires_at=utcnow() - timedelta(seconds=5))
    assert "This checkout has expired" in client.get(path).get_data(as_text=True)


def test_a_declined_attempt_is_explained_with_attempts_left(client, db, created):
    checkout_id, path, _ = created
    set_status(db, checkout_id, attempts=1)
    html = client.get(path).get_data(as_text=True)
    assert 'data-field="declined"' in html and "2 attempts left" in html


def test_pay_when_the_provider_is_down_is_a_friendly_503_and_the_checkout_stays_open(
    client, db, created
):
    # The test client serves no real socket, so the adapter's HTTP call to the sandbox fails
    # exactly as it does when the provider is unreachable.
    checkout_id, path, _ = created
    token = path.split("t=")[1]
    response = client.post(f"/checkout/{checkout_id}/pay", data={"t": token})
    assert response.status_code == 503
    assert "not answering" in response.get_data(as_text=True)
    with db.transaction() as session:
        checkout = session.get(Checkout, checkout_id)
        assert checkout.status == "open" and checkout.provider_session_id is None


def test_pay_on_a_closed_checkout_goes_back_to_its_page(client, db, created):
    checkout_id, path, _ = created
    set_status(db, checkout_id, status="canceled")
    token = path.split("t=")[1]
    response = client.post(f"/checkout/{checkout_id}/pay", data={"t": token})
    assert response.status_code == 303 and response.headers["Location"].endswith(path)
