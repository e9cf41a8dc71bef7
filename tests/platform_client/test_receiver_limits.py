"""mount_callback_endpoint's limits: a rejection's answer small enough for the service to read
whole, and a static list of secrets checked when mounting."""

from __future__ import annotations

import json

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from platform_client.callbacks import CallbackEvent
from platform_client.receiver import (
    MAX_BODY_BYTES,
    MAX_MESSAGE_CHARS,
    InMemorySeenStore,
    RejectCallback,
    mount_callback_endpoint,
)
from tests.platform_client.builders import SECRET, callback_body, signed


def rejecting(rejection: RejectCallback) -> FlaskClient:
    def handler(event: CallbackEvent) -> None:
        raise rejection

    app = Flask(__name__)
    mount_callback_endpoint(
        app, "/hooks", secrets=[SECRET], handler=handler, seen=InMemorySeenStore()
    )
    return app.test_client()


def answer_to(web: FlaskClient, extra: dict[str, str] | None = None) -> TestResponse:
    body = callback_body()
    return web.post("/hooks", data=body, headers={**signed(body), **(extra or {})})


def test_a_short_rejection_goes_out_whole() -> None:
    web = rejecting(RejectCallback("reservation_expired", "The seat is gone.", details={"a": 1}))
    error = answer_to(web).get_json()["error"]
    assert (error["code"], error["message"], error["details"]) == (
        "reservation_expired", "The seat is gone.", {"a": 1},
    )  # fmt: skip


@pytest.mark.parametrize(
    "letter", ["x", "가", "😀", '"'], ids=["ascii", "hangul", "emoji", "quote"]
)
def test_a_long_rejection_is_cut_to_stay_under_1_kib(letter: str) -> None:
    details = {"first": "kept if it fits", "huge": "y" * 5000, "last": 1}
    web = rejecting(RejectCallback("c" * 64, letter * 5000, status=422, details=details))

    response = answer_to(web)

    assert response.status_code == 422
    assert len(response.get_data()) <= MAX_BODY_BYTES < 1024
    error = json.loads(response.get_data())["error"]
    assert error["code"] == "c" * 64 and error["requestId"] == "req_1"
    assert 0 < len(error["message"]) <= MAX_MESSAGE_CHARS
    assert set(error["message"]) == {letter}
    assert "huge" not in error["details"]


def test_details_that_fit_are_kept_beside_a_long_message() -> None:
    details = {"tierId": "tier_7", "huge": "y" * 5000, "seatsLeft": 0}
    web = rejecting(RejectCallback("reservation_expired", "x" * 2000, details=details))
    error = answer_to(web).get_json()["error"]
    assert error["message"] == "x" * MAX_MESSAGE_CHARS
    assert error["details"] == {"tierId": "tier_7", "seatsLeft": 0}


def test_a_long_or_foreign_request_id_is_not_echoed() -> None:
    web = rejecting(RejectCallback("reservation_expired", "gone"))
    response = answer_to(web, {"x-request-id": "r" * 5000})
    request_id = response.get_json()["error"]["requestId"]
    assert request_id.startswith("req_") and len(request_id) == len("req_") + 24  # our own


def test_a_long_rejection_code_is_cut_and_still_refuses() -> None:
    """Raised in a handler, a ValueError would be a 500: retried for days, never refunded."""
    web = rejecting(RejectCallback("c" * 65, "gone"))
    response = answer_to(web)
    assert response.status_code == 409
    assert response.get_json()["error"]["code"] == "c" * 64


def test_an_empty_rejection_code_is_refused() -> None:
    with pytest.raises(ValueError, match="code"):
        RejectCallback("", "gone")


@pytest.mark.parametrize(
    "secrets",
    [
        ["sk_live_0123456789abcdef0123456789abcdef"],  # the API key passed as the secret
        [SECRET, "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],  # a secret without its whsec_ prefix
        ["whsec_eA=="],  # too short a key
        ["whsec_not base64!"],
        [],
    ],
    ids=["api key", "no prefix", "short", "not base64", "none"],
)
def test_a_malformed_static_secret_is_refused_when_mounting(secrets: list[str]) -> None:
    with pytest.raises(ValueError) as raised:
        mount_callback_endpoint(
            Flask(__name__), "/hooks", secrets=secrets, handler=print, seen=InMemorySeenStore()
        )
    for secret in secrets:
        assert secret not in str(raised.value)


def test_a_single_secret_string_and_a_callable_are_accepted() -> None:
    app = Flask(__name__)
    mount_callback_endpoint(app, "/one", secrets=SECRET, handler=print, seen=InMemorySeenStore())
    mount_callback_endpoint(
        app, "/rotating", secrets=lambda: ["not checked until a callback comes"],
        handler=print, seen=InMemorySeenStore(), endpoint="rotating",
    )  # fmt: skip
