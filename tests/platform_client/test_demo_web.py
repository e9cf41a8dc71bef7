"""What every answer of the reference platform gets (SQLite and PostgreSQL): ids checked in the
path, cross-origin posts refused, security and cache headers, and its own error pages; the
callback endpoint keeps its API answers."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient

from platform_client.demo import catalog
from platform_client.demo.app import CALLBACK_PATH
from platform_client.demo.catalog import SEED_EVENT_ID
from platform_client.demo.web import SECURITY_HEADERS
from tests.factories import PLATFORM_ORIGIN

TIER = "tier_10k_free"
REGISTER = f"/events/{SEED_EVENT_ID}/tiers/{TIER}/register"
FORM = {"name": "Kim", "email": "kim@example.com", "answer": "M"}
SIGN_IN = {"name": "Kim", "email": "kim@example.com", "next": "/"}


def signed_in(platform: Flask) -> FlaskClient:
    browser = platform.test_client()
    assert browser.post("/signin", data=SIGN_IN).status_code == 303
    return browser


def without_origin(platform: Flask) -> FlaskClient:
    """A client that sends only the headers each test gives (no Origin of its own)."""
    return FlaskClient(platform, platform.response_class, use_cookies=True)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/events/%00"),
        ("GET", f"/events/{SEED_EVENT_ID}/tiers/%00/register"),
        ("POST", f"/events/{SEED_EVENT_ID}/tiers/%00/register"),
        ("POST", f"/events/%00/tiers/{TIER}/register"),
        ("GET", "/reservations/%00"),
        ("GET", "/registrations/%00"),
        ("GET", "/reservations/res_x%00"),
        ("GET", "/events/evt_" + "x" * 130),
        ("GET", "/events/evt.x"),
    ],
)
def test_an_id_unlike_the_demos_is_not_found_before_any_query(
    demo: Flask, method: str, path: str
) -> None:
    response = signed_in(demo).open(path, method=method, data=FORM)
    assert response.status_code == 404, response.get_data(as_text=True)


@pytest.mark.parametrize(
    "path",
    [
        "/",
        f"/events/{SEED_EVENT_ID}",
        REGISTER,
        "/my/registrations",
        "/registrations/reg_unknown",  # the error page too
    ],
)
def test_every_page_carries_the_security_and_cache_headers(demo: Flask, path: str) -> None:
    response = signed_in(demo).get(path)
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, (path, name)
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["Cache-Control"] == "no-store"


def test_the_sign_in_page_and_a_posted_form_are_not_stored(demo: Flask) -> None:
    browser = demo.test_client()
    assert browser.get("/my/registrations").headers["Cache-Control"] == "no-store"
    refused = browser.post(REGISTER, data={**FORM, "email": "not-an-address"})
    assert refused.status_code == 422 and refused.headers["Cache-Control"] == "no-store"


def test_the_callback_endpoints_answers_are_left_alone(demo: Flask) -> None:
    unsigned = without_origin(demo).post(CALLBACK_PATH, data=b"{}")
    assert unsigned.status_code == 400  # its signature check, not the cross-origin refusal
    assert unsigned.is_json and "Content-Security-Policy" not in unsigned.headers
    wrong_method = demo.test_client().get(CALLBACK_PATH)
    assert wrong_method.status_code == 405
    assert "Race platform" not in wrong_method.get_data(as_text=True)


@pytest.mark.parametrize(
    "headers",
    [
        {"Referer": "https://evil.example/form"},
        {"Referer": f"{PLATFORM_ORIGIN}.evil.example/form"},
        {"Sec-Fetch-Site": "cross-site", "Referer": f"{PLATFORM_ORIGIN}/"},
        {"Sec-Fetch-Site": "same-site"},
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
    ],
    ids=lambda headers: "-".join(f"{k}={v}" for k, v in headers.items()),
)
def test_a_post_that_does_not_show_it_came_from_the_platform_is_refused(
    demo: Flask, headers: dict[str, str]
) -> None:
    browser = without_origin(demo)
    for path, data in ((REGISTER, FORM), ("/signin", SIGN_IN)):
        response = browser.post(path, data=data, headers=headers)
        assert response.status_code == 403, (path, response.get_data(as_text=True))
    assert browser.get("/my/registrations").get_data(as_text=True).count("kim@example.com") == 0


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": PLATFORM_ORIGIN},
        {"Origin": "http://localhost"},  # the Host the request was sent to
        {"Sec-Fetch-Site": "same-origin"},
        {"Sec-Fetch-Site": "none"},
        {"Referer": f"{PLATFORM_ORIGIN}{REGISTER}"},
        {},  # no browser sends a cross-site form post without any of them: a script's own
    ],
    ids=["origin", "host-origin", "same-origin", "fetch-none", "own-referer", "nothing"],
)
def test_a_post_from_the_platforms_own_pages_is_taken(demo: Flask, headers: dict[str, str]) -> None:
    response = without_origin(demo).post("/signin", data=SIGN_IN, headers=headers)
    assert (response.status_code, response.location) == (303, "/")


def test_unknown_pages_and_methods_get_the_demos_page_with_a_way_back(demo: Flask) -> None:
    browser = demo.test_client()
    missing = browser.get("/no/such/page")
    wrong = browser.put(f"/events/{SEED_EVENT_ID}")
    for response, status, title in ((missing, 404, "Page not found"), (wrong, 405, "Not allowed")):
        page = response.get_data(as_text=True)
        assert response.status_code == status and response.mimetype == "text/html"
        assert f'<h1 data-field="title">{title}</h1>' in page
        assert 'href="/" data-action="back-to-events"' in page
    assert set(wrong.headers["Allow"].split(", ")) == {"GET", "HEAD", "OPTIONS"}


def test_a_body_too_large_gets_the_demos_page(demo: Flask) -> None:
    response = demo.test_client().post("/signin", data={**SIGN_IN, "name": "x" * 70_000})
    assert response.status_code == 413
    assert '<h1 data-field="title">Too much data</h1>' in response.get_data(as_text=True)


def test_a_failure_gets_the_demos_page(demo: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(engine: object) -> list[catalog.EventInfo]:
        raise RuntimeError("the database is gone")

    monkeypatch.setattr(catalog, "events", broken)
    response = demo.test_client().get("/")

    page = response.get_data(as_text=True)
    assert response.status_code == 500
    assert '<h1 data-field="title">Something went wrong</h1>' in page
    assert "the database is gone" not in page
    assert response.headers["Cache-Control"] == "no-store"
