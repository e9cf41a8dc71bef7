"""The pay action when the provider cannot start a payment: down for now (try again), refusing
for good (back to the organiser), or no longer configured here (not available)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from payment_service.providers.base import ProviderRejected, ProviderUnavailable
from payment_service.providers.registry import ProviderRegistry
from tests.integration.checkout_pages.conftest import MERCHANT


def pay(client, created):
    return client.post(f"/checkout/{created.checkout_id}/pay", data={"t": created.token})


def back_link(html: str) -> str:
    return html.split('data-action="continue"')[0].rsplit('href="', 1)[1].split('"')[0]


def test_an_unavailable_provider_asks_to_try_again_in_a_minute(client, created, provider_raises):
    provider_raises(ProviderUnavailable("timeout"))
    response = pay(client, created)
    assert response.status_code == 503 and response.headers["Retry-After"] == "30"
    assert "not answering" in response.text and ">Try again<" in response.text


def test_a_provider_refusal_sends_the_buyer_back_to_the_organiser(client, created, provider_raises):
    provider_raises(ProviderRejected("400 invalid amount"))
    response = pay(client, created)
    assert response.status_code == 502 and "Retry-After" not in response.headers
    html = response.text
    assert "The payment could not be started" in html and "try again in a minute" not in html
    assert f"Go back to {MERCHANT}" in html and f">Back to {MERCHANT}<" in html
    link = back_link(html).replace("&amp;", "&")
    assert link.startswith(f"http://pay.test/checkout/{created.checkout_id}/return?")
    assert link.endswith("&buyer_canceled=1")


def test_a_provider_no_longer_configured_is_not_available_not_a_500(client, app, created):
    app.extensions["payment_providers"] = ProviderRegistry()
    response = pay(client, created)
    assert response.status_code == 503 and "Retry-After" not in response.headers
    assert "This payment method is not available" in response.text
    assert f">Back to {MERCHANT}<" in response.text
    page = client.get(created.path())  # the checkout page says so too, with no pay button
    assert page.status_code == 503 and 'data-action="pay"' not in page.text


def test_a_session_made_before_the_provider_went_is_not_reused(client, app, created, set_checkout):
    set_checkout(created.checkout_id, provider_session_id="sbs_1",
                 provider_session_url="http://psp.example/pay/sbs_1")  # fmt: skip
    app.extensions["payment_providers"] = ProviderRegistry()
    response = pay(client, created)  # a payment there could never be recorded
    assert response.status_code == 503 and "Location" not in response.headers


def test_the_return_without_the_provider_promises_no_callback(client, app, created, set_checkout):
    set_checkout(created.checkout_id, provider_session_id="sbs_1")
    app.extensions["payment_providers"] = ProviderRegistry()
    back = client.get(f"/checkout/{created.checkout_id}/return?t={created.token}")
    assert back.status_code == 303
    assert "status=processing" not in back.headers["Location"]
    assert back.headers["Location"].startswith(f"{created.checkout_url}&declined=1")
    canceled = client.get(
        f"/checkout/{created.checkout_id}/return?t={created.token}&buyer_canceled=1"
    )
    query = parse_qs(urlsplit(canceled.headers["Location"]).query)
    assert query["status"] == ["canceled"] and query["payment"] == ["cancel"]
