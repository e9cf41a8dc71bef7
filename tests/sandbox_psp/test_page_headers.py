"""The sandbox PSP's pages (error pages and redirects too) carry the browser security headers;
its API does not."""

from __future__ import annotations

from flask.testing import FlaskClient

from tests.sandbox_psp.conftest import Api

CSP = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'"


def assert_secured(response) -> None:  # type: ignore[no-untyped-def]
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Content-Security-Policy"] == CSP


def test_the_pay_page_and_its_redirect(api: Api, browser: FlaskClient) -> None:
    session = api.create_session()
    page = browser.get(f"/pay/{session['id']}")
    assert page.status_code == 200
    assert_secured(page)
    paid = browser.post(f"/pay/{session['id']}", data={"outcome": "succeeded"})
    assert paid.status_code == 303
    assert_secured(paid)
    assert_secured(browser.get(f"/pay/{session['id']}"))  # the "complete" page


def test_error_pages(browser: FlaskClient) -> None:
    for response, status in (
        (browser.get("/pay/sbs_missing"), 404),
        (browser.post("/pay/sbs_missing", data={"outcome": "nope"}), 400),
        (browser.get("/no/such/page"), 404),
        (browser.put("/pay/sbs_missing"), 405),
    ):
        assert response.status_code == status
        assert response.mimetype == "text/html"
        assert_secured(response)


def test_the_api_answers_are_not_pages(api: Api) -> None:
    response = api.get("/api/sessions/sbs_missing")
    assert response.status_code == 404
    assert "Content-Security-Policy" not in response.headers
