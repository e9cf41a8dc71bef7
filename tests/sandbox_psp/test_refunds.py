"""Payments and refunds over the API: full, partial, over-refund, idempotent replays."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.sandbox_psp.conftest import Api


def paid_payment(api: Api, browser: FlaskClient, outcome: str = "succeeded") -> dict[str, Any]:
    session = api.create_session(amount=30000)
    browser.post(f"/pay/{session['id']}", data={"outcome": outcome})
    last = api.get(f"/api/sessions/{session['id']}").json["lastPayment"]
    return api.get(f"/api/payments/{last['id']}").json  # type: ignore[no-any-return]


def test_a_payment_reads_back_with_its_fields(api: Api, browser: FlaskClient) -> None:
    payment = paid_payment(api, browser)
    assert payment["id"].startswith("sbp_") and payment["object"] == "payment"
    assert payment["status"] == "succeeded" and payment["txId"].startswith("sbtx_")
    assert payment["declineCode"] is None
    assert (payment["amount"], payment["currency"], payment["amountRefunded"]) == (30000, "KRW", 0)
    assert payment["reference"] == "chk_test_1" and payment["sessionId"].startswith("sbs_")


def test_a_refund_without_amount_refunds_everything_once(api: Api, browser: FlaskClient) -> None:
    payment = paid_payment(api, browser)
    response = api.post(f"/api/payments/{payment['id']}/refunds", {"reason": "rejected"})
    assert response.status_code == 201
    refund = response.json
    assert refund["id"].startswith("sbr_") and refund["object"] == "refund"
    assert (refund["paymentId"], refund["amount"], refund["currency"]) == (
        payment["id"],
        30000,
        "KRW",
    )
    assert refund["status"] == "succeeded" and refund["reason"] == "rejected"
    assert api.get(f"/api/payments/{payment['id']}").json["amountRefunded"] == 30000

    again = api.post(f"/api/payments/{payment['id']}/refunds")
    assert again.status_code == 409
    assert again.json["error"]["type"] == "invalid_state_error"


def test_partial_refunds_add_up_to_the_amount(api: Api, browser: FlaskClient) -> None:
    payment = paid_payment(api, browser)
    path = f"/api/payments/{payment['id']}/refunds"
    assert api.post(path, {"amount": 10000}).json["amount"] == 10000
    too_much = api.post(path, {"amount": 20001})
    assert too_much.status_code == 409 and "20000" in too_much.json["error"]["message"]
    assert api.post(path).json["amount"] == 20000  # the rest
    assert api.post(path, {"amount": 1}).status_code == 409


def test_the_same_key_replays_the_refund(api: Api, browser: FlaskClient) -> None:
    payment = paid_payment(api, browser)
    path = f"/api/payments/{payment['id']}/refunds"
    key = {"Idempotency-Key": "refund-chk_test_1"}
    first = api.post(path, {"reason": "rejected"}, headers=key)
    again = api.post(path, {"reason": "rejected"}, headers=key)  # fully refunded: still a replay
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json == first.json
    assert api.get(f"/api/payments/{payment['id']}").json["amountRefunded"] == 30000

    changed = api.post(path, {"reason": "other"}, headers=key)
    assert changed.status_code == 400 and changed.json["error"]["type"] == "idempotency_error"
    other = paid_payment(api, browser)
    elsewhere = api.post(
        f"/api/payments/{other['id']}/refunds", {"reason": "rejected"}, headers=key
    )
    assert elsewhere.status_code == 400


def test_a_declined_payment_cannot_be_refunded(api: Api, browser: FlaskClient) -> None:
    payment = paid_payment(api, browser, outcome="declined")
    assert payment["status"] == "declined" and payment["txId"] is None
    assert payment["declineCode"] == "card_declined"
    response = api.post(f"/api/payments/{payment['id']}/refunds")
    assert response.status_code == 409


def test_refund_of_an_unknown_payment_is_404(api: Api) -> None:
    response = api.post("/api/payments/sbp_nope/refunds", {"amount": 1})
    assert response.status_code == 404 and response.json["error"]["type"] == "not_found_error"


@pytest.mark.parametrize(
    "body", [{"amount": 0}, {"amount": "100"}, {"amount": 1.5}, {"reason": ""}, {"why": "x"}]
)
def test_invalid_refund_bodies_are_422(
    api: Api, browser: FlaskClient, body: dict[str, Any]
) -> None:
    payment = paid_payment(api, browser)
    response = api.post(f"/api/payments/{payment['id']}/refunds", body)
    assert response.status_code == 422
    assert api.get(f"/api/payments/{payment['id']}").json["amountRefunded"] == 0
