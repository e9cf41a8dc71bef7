"""PaymentServiceClient's HTTP session: what it takes from the environment (once), and that a
session passed in keeps its own cookies and headers."""

from __future__ import annotations

import json

import pytest
import requests
import requests.adapters

from platform_client.client import PaymentServiceClient
from platform_client.errors import PaymentServiceUnavailable
from tests.platform_client.servers import CHECKOUT, Script

API_KEY = "pk_live_very_secret_0123456789"


def test_a_netrc_entry_for_the_service_never_replaces_the_bearer_key(
    service: Script, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login someone password hunter2\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    with PaymentServiceClient(service.url, API_KEY) as client:
        client.get_checkout("chk_1")
    [sent] = service.seen
    assert sent.headers["Authorization"] == f"Bearer {API_KEY}"


def test_proxy_and_ca_bundle_variables_are_read_once_when_the_client_is_made(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/corporate.pem")
    client = PaymentServiceClient("https://pay.example", API_KEY)
    session = client._session
    assert session.proxies["https"] == "http://proxy.internal:3128"
    assert session.verify == "/etc/ssl/corporate.pem"
    monkeypatch.setenv("NO_PROXY", "pay.example")
    bypassed = PaymentServiceClient("https://pay.example", API_KEY)._session
    assert "https" not in bypassed.proxies


def test_a_session_passed_in_keeps_its_headers_and_cookies(service: Script) -> None:
    session = requests.Session()
    session.headers["X-Tenant"] = "race-site"
    session.cookies.set("route", "blue")
    with PaymentServiceClient(service.url, API_KEY, session=session) as client:
        client.get_checkout("chk_1")
    [sent] = service.seen
    assert sent.headers["X-Tenant"] == "race-site"
    assert "route=blue" in sent.headers["Cookie"]
    assert sent.headers["Authorization"] == f"Bearer {API_KEY}"


def test_our_own_session_sends_its_default_headers(service: Script) -> None:
    with PaymentServiceClient(service.url, API_KEY) as client:
        client.get_checkout("chk_1")
    [sent] = service.seen
    assert sent.headers["User-Agent"].startswith("python-requests/")
    assert sent.headers["Accept"] == "application/json"


def test_our_own_session_sends_through_the_proxy_read_at_construction(
    service: Script, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("http_proxy", "no_proxy", "all_proxy", "ALL_PROXY"):  # lower case wins
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", service.url)  # the scripted service stands in as the proxy
    monkeypatch.setenv("NO_PROXY", "")
    with PaymentServiceClient("http://pay.invalid", API_KEY) as client:
        monkeypatch.delenv("HTTP_PROXY")  # read once: later changes do not matter
        client.get_checkout("chk_1")
    [sent] = service.seen
    assert sent.path == "http://pay.invalid/v1/ticket-checkouts/chk_1"  # absolute: a proxy request
    assert sent.headers["Authorization"] == f"Bearer {API_KEY}"


def test_our_own_session_verifies_with_the_ca_bundle_read_at_construction(
    monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    missing = tmp_path / "no-such-bundle.pem"
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(missing))
    with PaymentServiceClient("https://127.0.0.1:9", API_KEY, retries=0) as client:
        monkeypatch.delenv("REQUESTS_CA_BUNDLE")  # read once: later changes do not matter
        with pytest.raises(PaymentServiceUnavailable, match=r"no-such-bundle\.pem") as caught:
            client.get_checkout("chk_1")  # requests refuses a bundle path that does not exist
    assert caught.value.code == "connection_error"


def test_a_base_url_with_user_information_is_refused() -> None:
    with pytest.raises(ValueError, match="user information"):
        PaymentServiceClient("https://user:pass@pay.example", API_KEY)


class CannedAdapter(requests.adapters.BaseAdapter):
    """A transport that answers every request with one checkout, as test tools mount them."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[requests.PreparedRequest] = []

    def send(self, request: requests.PreparedRequest, **kwargs: object) -> requests.Response:
        self.sent.append(request)
        response = requests.Response()
        response.status_code, response.url = 200, request.url
        response._content = json.dumps(CHECKOUT).encode()
        response.headers["Content-Type"] = "application/json"
        return response

    def close(self) -> None:
        pass


def test_an_adapter_mounted_later_on_our_session_gets_the_calls() -> None:
    client = PaymentServiceClient("https://pay.invalid", API_KEY)
    canned = CannedAdapter()
    client._session.mount("https://pay.invalid/", canned)  # what requests-mock and the like do
    assert client.get_checkout("chk_1").checkout_id == CHECKOUT["checkoutId"]
    [sent] = canned.sent
    assert sent.url == "https://pay.invalid/v1/ticket-checkouts/chk_1"
