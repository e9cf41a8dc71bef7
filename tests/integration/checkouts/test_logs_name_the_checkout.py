"""Every log line about a checkout carries its checkoutId and reservationId (CONTRACT §4): the
API's reads and cancels, the hosted pages, and the buyer's trip to the provider and back."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from urllib.parse import urljoin

import pytest
import requests
from sqlalchemy import update
from werkzeug.serving import make_server

from payment_service import close_app, create_app
from payment_service.checkouts.models import Checkout
from tests.e2e.buyer import Page
from tests.factories import checkout_payload, public_resolver

RESERVATION = "res_logs"


@dataclass
class Live:
    url: str
    http: requests.Session

    def request(self, method: str, url: str, **kwargs) -> requests.Response:
        return self.http.request(
            method, urljoin(self.url, url), allow_redirects=False, timeout=20, **kwargs
        )

    def submit(self, url: str, **button: str) -> str:
        """Open a page, press the button with these attributes; where its 303 sends us."""
        page = Page.parse(url, self.request("GET", url))
        pressed = page.find(**button)
        assert pressed is not None, page.html[:2000]
        form = page.form_of(pressed)
        data = dict(form.inputs)
        if pressed.attrs.get("name"):
            data[pressed.attrs["name"]] = pressed.attrs.get("value", "")
        answer = self.request(form.method.upper(), urljoin(url, form.action or url), data=data)
        assert answer.status_code == 303, answer.text[:2000]
        return urljoin(url, answer.headers["Location"])


@pytest.fixture
def live(settings, db) -> Iterator[Live]:
    """The app with its sandbox PSP on a real socket: the pay button calls the provider over
    HTTP, and the provider sends the buyer back to our return page."""
    built = {}
    server = make_server(
        "127.0.0.1", 0, lambda environ, start: built["app"](environ, start), threaded=True
    )
    url = f"http://127.0.0.1:{server.server_port}"
    app = create_app(replace(settings, public_url=url, sandbox=True))
    policy = app.extensions["payment_policy"]
    app.extensions["payment_policy"] = replace(policy, resolve=public_resolver)
    built["app"] = app
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        with requests.Session() as http:
            yield Live(url, http)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
        close_app(app)


def lines_of(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def assert_named(lines: list[dict], checkout_id: str) -> None:
    for line in lines:
        assert (line.get("checkoutId"), line.get("reservationId")) == (
            checkout_id,
            RESERVATION,
        ), line


def request_line(lines: list[dict], method: str, path: str) -> dict:
    [line] = [
        line
        for line in lines
        if line["event"] == "http.request" and (line["method"], line["path"]) == (method, path)
    ]
    return line


def test_reads_cancels_pages_and_the_buyers_round_trip_name_the_checkout(
    live, merchant, log_stream
):
    created = live.request(
        "POST", "/v1/ticket-checkouts", json=checkout_payload(RESERVATION),
        headers={**merchant.auth, "Idempotency-Key": "logs"},
    ).json()  # fmt: skip
    checkout_id = created["checkoutId"]
    assert live.request("GET", f"/v1/ticket-checkouts/{checkout_id}", headers=merchant.auth).ok
    provider_page = live.submit(created["checkoutUrl"], data_action="pay")
    our_return = live.submit(provider_page, data_outcome="declined")
    assert live.request("GET", our_return).status_code == 303
    cancel = f"/v1/ticket-checkouts/{checkout_id}/cancel"
    assert live.request("POST", cancel, headers=merchant.auth).ok

    lines = lines_of(log_stream)
    about = [
        request_line(lines, "GET", f"/v1/ticket-checkouts/{checkout_id}"),
        request_line(lines, "GET", f"/checkout/{checkout_id}"),
        request_line(lines, "POST", f"/checkout/{checkout_id}/pay"),
        request_line(lines, "GET", f"/checkout/{checkout_id}/return"),
        request_line(lines, "POST", cancel),
    ]
    [session_line] = [line for line in lines if line["event"] == "checkout.provider_session"]
    assert_named([*about, session_line], checkout_id)
    # And no line of the service that names the checkout anywhere lacks either field.
    ours = [line for line in lines if line["logger"].startswith("payment_service.")]
    assert_named([line for line in ours if checkout_id in json.dumps(line)], checkout_id)


def test_a_return_the_provider_cannot_confirm_names_the_checkout(client, merchant, db, log_stream):
    """The test client serves no socket, so asking the sandbox for the session's status fails
    as it does when the provider is down: the buyer's return logs a warning about it."""
    created = client.post(
        "/v1/ticket-checkouts", json=checkout_payload(RESERVATION),
        headers={**merchant.auth, "Idempotency-Key": "logs-return"},
    ).get_json()  # fmt: skip
    checkout_id = created["checkoutId"]
    with db.transaction() as session:
        session.execute(
            update(Checkout)
            .where(Checkout.id == checkout_id)
            .values(provider_session_id="sbx_sess_unreachable")
        )
    token = created["checkoutUrl"].split("t=")[1]
    assert client.get(f"/checkout/{checkout_id}/return?t={token}").status_code == 303

    lines = lines_of(log_stream)
    [unknown] = [line for line in lines if line["event"] == "checkout.return_status_unknown"]
    assert_named(
        [unknown, request_line(lines, "GET", f"/checkout/{checkout_id}/return")], checkout_id
    )
