"""Errors on the buyer's pages are pages (the message template, same status), not the API's
JSON envelope; /v1 keeps the envelope."""

from __future__ import annotations

import pytest

import payment_service.checkouts.pages as pages
from payment_service.settings import MAX_BODY_BYTES


def assert_page(response, status: int, title: str) -> None:
    assert response.status_code == status
    assert response.mimetype == "text/html"
    assert f'data-field="title">{title}<' in response.text
    assert '"error"' not in response.text


@pytest.mark.parametrize(
    ("path", "status", "title"),
    [("/checkout/", 404, "Page not found"), ("/checkout/chk_x/nothing", 404, "Page not found")],
)
def test_a_missing_page_is_a_page(client, path, status, title) -> None:
    assert_page(client.get(path), status, title)


def test_get_on_the_pay_action_is_a_405_page_that_names_the_allowed_method(client) -> None:
    response = client.get("/checkout/chk_x/pay")
    assert_page(response, 405, "This page cannot be opened this way")
    assert "POST" in response.headers["Allow"]


def test_an_oversized_form_is_a_413_page(client, created) -> None:
    big = {"t": created.token, "filler": "x" * (MAX_BODY_BYTES + 1)}
    response = client.post(f"/checkout/{created.checkout_id}/pay", data=big)
    assert_page(response, 413, "The form sent was too large")


def test_an_unexpected_failure_is_a_500_page(client, created, monkeypatch) -> None:
    def broken(*_args, **_kwargs):
        raise RuntimeError("bug")

    monkeypatch.setattr(pages, "start_payment", broken)
    response = client.post(f"/checkout/{created.checkout_id}/pay", data={"t": created.token})
    assert_page(response, 500, "Something went wrong on our side")


def test_the_api_keeps_the_json_envelope(client, merchant) -> None:
    for response, status in ((client.get("/v1/nothing", headers=merchant.auth), 404),
                             (client.delete("/v1/ticket-checkouts", headers=merchant.auth), 405),
                             (client.get("/v1/ticket-checkouts/chk_x"), 401)):  # fmt: skip
        assert response.status_code == status
        assert response.mimetype == "application/json"
        assert response.get_json()["error"]["code"]
