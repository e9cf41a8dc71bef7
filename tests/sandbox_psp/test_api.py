"""The REST API over the Flask test client: auth, sessions, expiry, validation, test switches."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from flask.testing import FlaskClient
from sqlalchemy import update

from payment_service.sandbox_psp import services
from payment_service.sandbox_psp.models import CheckoutSession
from payment_service.sandbox_psp.runtime import Sandbox
from tests.sandbox_psp.conftest import Api, session_body

SESSION_FIELDS = {
    "id", "object", "status", "url", "amount", "currency", "reference", "description",
    "expiresAt", "paymentId", "lastPayment", "createdAt",
}  # fmt: skip


def make_overdue(sandbox: Sandbox, session_id: str) -> None:
    with sandbox.store.transaction() as db:
        db.execute(
            update(CheckoutSession)
            .where(CheckoutSession.id == session_id)
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic c2J4"}, {"Authorization": ""}],
)
def test_every_api_call_needs_the_bearer_key(browser: FlaskClient, headers: dict[str, str]) -> None:
    for response in (
        browser.post("/api/sessions", json=session_body(), headers=headers),
        browser.get("/api/sessions/sbs_x", headers=headers),
        browser.get("/api/test/config", headers=headers),
    ):
        assert response.status_code == 401
        assert response.json["error"]["type"] == "authentication_error"
        assert response.json["error"]["message"]


def test_create_returns_an_open_session_with_an_absolute_page_url(api: Api) -> None:
    response = api.post("/api/sessions", session_body(expiresAt="2999-01-01T00:00:00Z"))
    assert response.status_code == 422  # more than 24 h away

    expires = (datetime.now(UTC) + timedelta(minutes=15)).replace(microsecond=0)
    response = api.post("/api/sessions", session_body(expiresAt=expires.isoformat()))
    assert response.status_code == 201
    session = response.json
    assert set(session) == SESSION_FIELDS
    assert session["id"].startswith("sbs_")
    assert session["object"] == "session"
    assert session["status"] == "open"
    assert session["url"] == f"http://localhost/pay/{session['id']}"
    assert (session["amount"], session["currency"]) == (30000, "KRW")
    assert session["reference"] == "chk_test_1"
    assert session["expiresAt"] == expires.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert session["paymentId"] is None and session["lastPayment"] is None
    assert api.get(f"/api/sessions/{session['id']}").json == session


def test_expires_at_defaults_to_24_hours(api: Api) -> None:
    session = api.create_session()
    expires = datetime.fromisoformat(session["expiresAt"])
    created = datetime.fromisoformat(session["createdAt"])
    assert timedelta(hours=23, minutes=59) <= expires - created <= timedelta(hours=24, seconds=1)


def test_the_same_idempotency_key_returns_the_same_session(api: Api) -> None:
    key = {"Idempotency-Key": "chk_test_1:attempt:1"}
    first = api.post("/api/sessions", session_body(), headers=key)
    again = api.post("/api/sessions", session_body(), headers=key)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json == first.json

    other = api.post("/api/sessions", session_body(), headers={"Idempotency-Key": "other"})
    assert other.status_code == 201 and other.json["id"] != first.json["id"]
    unkeyed = [api.post("/api/sessions", session_body()).json["id"] for _ in range(2)]
    assert len(set(unkeyed)) == 2


def test_a_key_reused_with_other_parameters_is_refused(api: Api) -> None:
    key = {"Idempotency-Key": "k1"}
    assert api.post("/api/sessions", session_body(), headers=key).status_code == 201
    response = api.post("/api/sessions", session_body(amount=1), headers=key)
    assert response.status_code == 400
    assert response.json["error"]["type"] == "idempotency_error"
    too_long = api.post("/api/sessions", session_body(), headers={"Idempotency-Key": "k" * 256})
    assert too_long.status_code == 400


@pytest.mark.parametrize(
    ("overrides", "fields"),
    [
        ({"amount": None, "currency": None}, {"amount", "currency"}),
        ({"amount": 300.5}, {"amount"}),
        ({"amount": "30000"}, {"amount"}),
        ({"amount": True}, {"amount"}),
        ({"amount": 0}, {"amount"}),
        ({"amount": 100_000_000}, {"amount"}),
        ({"currency": "krw"}, {"currency"}),
        ({"currency": "XYZ"}, {"currency"}),
        ({"reference": ""}, {"reference"}),
        ({"description": None}, {"description"}),
        ({"description": "x" * 501}, {"description"}),
        ({"returnUrl": "javascript:alert(1)"}, {"returnUrl"}),
        ({"cancelUrl": "/relative"}, {"cancelUrl"}),
        ({"webhookUrl": None}, {"webhookUrl"}),
        ({"webhookUrl": "http://[::1"}, {"webhookUrl"}),
        ({"expiresAt": "2020-01-01T00:00:00Z"}, {"expiresAt"}),
        ({"expiresAt": "2030-01-01T00:00:00"}, {"expiresAt"}),
        ({"expiresAt": "tomorrow"}, {"expiresAt"}),
        ({"metadata": {}}, {"metadata"}),
    ],
)
def test_invalid_bodies_are_422_with_details(
    api: Api, overrides: dict[str, object], fields: set[str]
) -> None:
    response = api.post("/api/sessions", session_body(**overrides))
    assert response.status_code == 422
    error = response.json["error"]
    assert error["type"] == "validation_error"
    assert set(error["details"]) == fields


def test_malformed_and_non_object_bodies_are_400(api: Api) -> None:
    headers = {**api.headers, "Content-Type": "application/json"}
    for data in ("{", "[1, 2]", "", '"text"'):
        response = api.client.post("/api/sessions", data=data, headers=headers)
        assert response.status_code == 400, data
        assert response.json["error"]["type"] == "invalid_request_error"


def test_unknown_objects_and_routes_are_json_404s(api: Api) -> None:
    for path in ("/api/sessions/sbs_nope", "/api/payments/sbp_nope", "/api/nothing-here"):
        response = api.get(path)
        assert response.status_code == 404
        assert response.json["error"]["type"] == "not_found_error"
    assert api.client.delete("/api/sessions", headers=api.headers).status_code == 405


def test_expire_is_idempotent_and_refused_once_complete(api: Api, browser: FlaskClient) -> None:
    session = api.create_session()
    first = api.post(f"/api/sessions/{session['id']}/expire")
    again = api.post(f"/api/sessions/{session['id']}/expire")
    assert (first.status_code, again.status_code) == (200, 200)
    assert first.json["status"] == again.json["status"] == "expired"

    paid = api.create_session()
    browser.post(f"/pay/{paid['id']}", data={"outcome": "succeeded"})
    response = api.post(f"/api/sessions/{paid['id']}/expire")
    assert response.status_code == 409
    assert response.json["error"]["type"] == "invalid_state_error"
    assert api.get(f"/api/sessions/{paid['id']}").json["status"] == "complete"


def test_a_session_past_its_expiry_reads_as_expired(api: Api, sandbox: Sandbox) -> None:
    session = api.create_session()
    make_overdue(sandbox, session["id"])
    assert api.get(f"/api/sessions/{session['id']}").json["status"] == "expired"


def test_the_sweep_expires_overdue_sessions_unasked(api: Api, sandbox: Sandbox) -> None:
    overdue, fresh = api.create_session(), api.create_session()
    make_overdue(sandbox, overdue["id"])
    assert services.expire_due_sessions(sandbox) == 1
    assert services.expire_due_sessions(sandbox) == 0
    events = api.get("/api/test/events").json["data"]
    assert [(e["type"], e["status"] != "held") for e in events] == [("session.expired", True)]
    assert api.get(f"/api/sessions/{fresh['id']}").json["status"] == "open"


def test_the_down_switch_fails_the_api_and_the_page_but_not_the_switches(
    api: Api, browser: FlaskClient
) -> None:
    session = api.create_session()
    assert api.configure(down=True)["down"] is True
    for response in (
        api.post("/api/sessions", session_body()),
        api.get(f"/api/sessions/{session['id']}"),
        api.post(f"/api/sessions/{session['id']}/expire"),
        api.get("/api/payments/sbp_x"),
    ):
        assert response.status_code == 503
        assert response.json == {"error": {"type": "api_error", "message": "sandbox is down"}}
    page = browser.get(f"/pay/{session['id']}")
    assert page.status_code == 503 and "down" in page.text
    assert 'data-outcome="succeeded"' not in page.text
    assert browser.post(f"/pay/{session['id']}", data={"outcome": "succeeded"}).status_code == 503
    assert api.get("/api/test/config").json["down"] is True

    api.configure(down=False)
    assert api.get(f"/api/sessions/{session['id']}").json["status"] == "open"


def test_switches_are_validated_and_reset(api: Api) -> None:
    for body in (
        {"webhookCopies": 0},
        {"webhookCopies": True},
        {"webhookDelayMs": -1},
        {"holdWebhooks": "yes"},
        {"nextOutcomes": ["refunded"]},
        {"nextOutcomes": "declined"},
        {"colour": "blue"},
    ):
        response = api.post("/api/test/config", body)
        assert response.status_code == 422, body
        assert set(response.json["error"]["details"]) == set(body)
    configured = api.configure(
        webhookCopies=3, webhookDelayMs=100, holdWebhooks=True, nextOutcomes=["declined"]
    )
    assert configured == {
        "webhookCopies": 3,
        "webhookDelayMs": 100,
        "holdWebhooks": True,
        "down": False,
        "nextOutcomes": ["declined"],
        "heldWebhooks": 0,
    }
    assert api.configure(reset=True) == {
        "webhookCopies": 1,
        "webhookDelayMs": 0,
        "holdWebhooks": False,
        "down": False,
        "nextOutcomes": [],
        "heldWebhooks": 0,
    }


def test_next_outcomes_override_the_button_in_order(api: Api, browser: FlaskClient) -> None:
    session = api.create_session()
    api.configure(nextOutcomes=["declined", "declined"])
    for expected in ("declined", "declined", "succeeded"):
        browser.post(f"/pay/{session['id']}", data={"outcome": "succeeded"})
        assert api.get(f"/api/sessions/{session['id']}").json["lastPayment"]["status"] == expected
    assert api.get("/api/test/config").json["nextOutcomes"] == []


def test_an_oversized_body_is_refused(api: Api) -> None:
    response = api.post("/api/sessions", session_body(description="x" * 70_000))
    assert response.status_code == 413
    assert response.json["error"]["type"] == "invalid_request_error"
