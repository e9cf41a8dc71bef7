"""PaymentServiceClient's HTTP session: what it takes from the environment (once), and that a
session passed in keeps its own cookies and headers."""

from __future__ import annotations

import pytest
import requests

from platform_client.client import PaymentServiceClient
from tests.platform_client.servers import Script

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
