"""Every answer under /checkout/ and /sandbox/ (pages, redirects, error pages) carries the
browser security headers; the API's answers do not change."""

from __future__ import annotations

import pytest

from payment_service.checkouts.pages import SECURITY_HEADERS

CSP = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'"


def assert_secured(response) -> None:
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Content-Security-Policy"] == CSP


def test_the_policy_leaves_the_pay_forms_redirect_to_the_provider_alone() -> None:
    assert "form-action" not in SECURITY_HEADERS["Content-Security-Policy"]


def test_the_pay_page_and_a_status_page(client, created, set_checkout) -> None:
    page = client.get(created.path())
    assert page.status_code == 200
    assert_secured(page)
    set_checkout(created.checkout_id, status="canceled")
    closed = client.get(created.path())
    assert "This checkout was canceled" in closed.text
    assert_secured(closed)


def test_redirects_refusals_and_outage_pages(client, created, set_checkout) -> None:
    outage = client.post(f"/checkout/{created.checkout_id}/pay", data={"t": created.token})
    assert outage.status_code == 503  # the test client reaches no sandbox
    assert_secured(outage)
    refused = client.get(f"/checkout/{created.checkout_id}?t=garbage")
    assert refused.status_code == 403
    assert_secured(refused)
    set_checkout(created.checkout_id, status="canceled")
    redirect = client.post(f"/checkout/{created.checkout_id}/pay", data={"t": created.token})
    assert redirect.status_code == 303
    assert_secured(redirect)
    back = client.get(f"/checkout/{created.checkout_id}/return?t={created.token}")
    assert back.status_code == 303
    assert_secured(back)


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("get", "/checkout/", 404),
        ("get", "/checkout/chk_x/pay", 405),
        ("get", "/checkout/a/b/c", 404),
    ],
)
def test_error_pages_under_checkout(client, method, path, status) -> None:
    response = getattr(client, method)(path)
    assert response.status_code == status
    assert_secured(response)


def test_api_answers_keep_their_headers(client, merchant) -> None:
    for response in (client.get("/v1/ticket-checkouts/chk_none", headers=merchant.auth),
                     client.get("/v1/nothing-here"), client.get("/healthz")):  # fmt: skip
        assert "Content-Security-Policy" not in response.headers
        assert "X-Frame-Options" not in response.headers


def test_the_sandbox_pages_mounted_in_the_service(client) -> None:
    page = client.get("/sandbox/pay/sbs_missing")
    assert page.status_code == 404 and page.mimetype == "text/html"
    assert_secured(page)
    assert "Content-Security-Policy" not in client.get("/sandbox/api/sessions/x").headers
