"""The hosted payment page: what the buyer sees, and where each control takes them."""

from __future__ import annotations

import re

from flask.testing import FlaskClient

from payment_service.sandbox_psp.runtime import Sandbox
from tests.sandbox_psp.conftest import Api
from tests.sandbox_psp.test_api import make_overdue


def controls(html: str) -> dict[str, list[str]]:
    return {
        "outcomes": re.findall(r'data-outcome="([a-z]+)"', html),
        "actions": re.findall(r'data-action="([a-z]+)"', html),
    }


def test_the_page_shows_the_order_and_three_controls(api: Api, browser: FlaskClient) -> None:
    session = api.create_session()
    page = browser.get(f"/pay/{session['id']}")
    assert page.status_code == 200
    assert page.mimetype == "text/html"
    html = page.text
    assert "Sandbox PSP — test mode, no real money" in html
    assert 'name="viewport"' in html and "<script" not in html
    assert "Seoul Marathon 2027 - Full course" in html
    assert "₩30,000" in html
    assert controls(html) == {"outcomes": ["succeeded", "declined"], "actions": ["cancel"]}
    assert re.search(
        r'<button[^>]*name="outcome" value="succeeded"[^>]*data-outcome="succeeded">Pay ₩30,000',
        html,
    )
    assert "Simulate a declined card" in html
    cancel = 'data-action="cancel" href="https://pay.test/checkout/chk_test_1?t=abc"'
    assert cancel in html
    assert f'method="post" action="/pay/{session["id"]}"' in html


def test_other_currencies_are_formatted_in_their_minor_unit(api: Api, browser: FlaskClient) -> None:
    for amount, currency, text in ((1999, "USD", "$19.99"), (1250, "BHD", "BHD\u00a01.250")):
        session = api.create_session(amount=amount, currency=currency)
        assert text in browser.get(f"/pay/{session['id']}").text


def test_the_order_name_is_escaped(api: Api, browser: FlaskClient) -> None:
    session = api.create_session(description="<script>alert(1)</script> & more")
    html = browser.get(f"/pay/{session['id']}").text
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in html


def test_paying_completes_the_session_and_returns_the_buyer(api: Api, browser: FlaskClient) -> None:
    session = api.create_session()
    response = browser.post(f"/pay/{session['id']}", data={"outcome": "succeeded"})
    assert response.status_code == 303
    assert (
        response.location == f"https://pay.test/return/chk_test_1?t=abc&session_id={session['id']}"
    )
    after = api.get(f"/api/sessions/{session['id']}").json
    assert after["status"] == "complete"
    assert after["paymentId"] == after["lastPayment"]["id"]
    assert after["lastPayment"]["status"] == "succeeded"


def test_a_return_url_without_a_query_gets_one(api: Api, browser: FlaskClient) -> None:
    session = api.create_session(returnUrl="http://127.0.0.1:8000/return#top")
    response = browser.post(f"/pay/{session['id']}", data={"outcome": "succeeded"})
    assert response.location == f"http://127.0.0.1:8000/return?session_id={session['id']}#top"


def test_a_decline_leaves_the_session_open_for_another_try(api: Api, browser: FlaskClient) -> None:
    session = api.create_session()
    response = browser.post(f"/pay/{session['id']}", data={"outcome": "declined"})
    assert response.status_code == 303
    assert response.location.endswith(f"&session_id={session['id']}")
    after = api.get(f"/api/sessions/{session['id']}").json
    assert after["status"] == "open" and after["paymentId"] is None
    declined = after["lastPayment"]
    assert declined["status"] == "declined" and declined["declineCode"] == "card_declined"
    page = browser.get(f"/pay/{session['id']}").text
    assert "declined" in page and 'data-outcome="succeeded"' in page

    browser.post(f"/pay/{session['id']}", data={"outcome": "succeeded"})
    paid = api.get(f"/api/sessions/{session['id']}").json
    assert paid["status"] == "complete" and paid["lastPayment"]["id"] != declined["id"]


def test_an_unknown_outcome_is_a_400_page_and_no_payment(api: Api, browser: FlaskClient) -> None:
    session = api.create_session()
    for data in ({"outcome": "refunded"}, {}):
        response = browser.post(f"/pay/{session['id']}", data=data)
        assert response.status_code == 400 and response.mimetype == "text/html"
    assert api.get(f"/api/sessions/{session['id']}").json["lastPayment"] is None


def test_an_expired_session_cannot_be_paid(
    api: Api, browser: FlaskClient, sandbox: Sandbox
) -> None:
    session = api.create_session()
    make_overdue(sandbox, session["id"])
    for response in (
        browser.get(f"/pay/{session['id']}"),
        browser.post(f"/pay/{session['id']}", data={"outcome": "succeeded"}),
    ):
        assert response.status_code == 410
        assert "expired" in response.text
        assert controls(response.text)["outcomes"] == []
    after = api.get(f"/api/sessions/{session['id']}").json
    assert after["status"] == "expired" and after["lastPayment"] is None


def test_a_complete_session_shows_its_page_and_is_not_paid_twice(
    api: Api, browser: FlaskClient
) -> None:
    session = api.create_session()
    browser.post(f"/pay/{session['id']}", data={"outcome": "succeeded"})
    payment_id = api.get(f"/api/sessions/{session['id']}").json["paymentId"]

    page = browser.get(f"/pay/{session['id']}")
    assert page.status_code == 200 and "complete" in page.text
    assert controls(page.text)["outcomes"] == []
    again = browser.post(f"/pay/{session['id']}", data={"outcome": "declined"})
    assert again.status_code == 303 and again.location.endswith(f"session_id={session['id']}")
    after = api.get(f"/api/sessions/{session['id']}").json
    assert after["paymentId"] == payment_id and after["lastPayment"]["id"] == payment_id
    events = api.get("/api/test/events").json["data"]
    assert [event["type"] for event in events] == ["payment.succeeded"]


def test_an_unknown_session_is_a_404_page(browser: FlaskClient) -> None:
    for response in (
        browser.get("/pay/sbs_nope"),
        browser.post("/pay/sbs_nope", data={"outcome": "succeeded"}),
        browser.get("/no-such-page"),
    ):
        assert response.status_code == 404 and response.mimetype == "text/html"
        assert "Sandbox PSP" in response.text
