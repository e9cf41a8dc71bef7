"""Bodies no view should see: nested past what json.loads can, or chunked past 1 MiB; each is
its 4xx from CONTRACT §3, never a 500 or the wrong error, on the servers we run under."""

from __future__ import annotations

import http.client
import io
import json
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from werkzeug.serving import make_server

from payment_service.logging import configure_logging
from payment_service.settings import MAX_BODY_BYTES
from tests.deploy.sources import GUNICORN_CONF
from tests.e2e.processes import BIN, Server, containers_env, free_port
from tests.factories import checkout_payload, make_merchant

DEEP = 2000  # past the interpreter's recursion limit: json.loads raises RecursionError
NESTED = 600  # below it: json.loads takes it, and a recursive walk of the result fails


@pytest.fixture(autouse=True)
def json_logs():
    """Log as in production (JSON): the console renderer's rich traceback of a deep
    RecursionError takes minutes, so without the fixes these tests would hang, not fail."""
    configure_logging("json", stream=io.StringIO())
    yield
    logging.getLogger().handlers[:] = []


def post(client, merchant, path, body: bytes):
    headers = {**merchant.auth, "Idempotency-Key": "deep", "Content-Type": "application/json"}
    return client.post(path, data=body, headers=headers)


def error_of(response, status):
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    return response.get_json()["error"]


@pytest.mark.parametrize("path", ["/v1/ticket-checkouts", "/v1/ticket-checkouts/chk_x/cancel"])
@pytest.mark.parametrize(
    "body",
    [b"[" * DEEP + b"]" * DEEP, b'{"a":' * DEEP + b"1" + b"}" * DEEP],
    ids=["arrays", "objects"],
)
def test_json_nested_too_deeply_is_malformed_json(client, merchant, path, body):
    error = error_of(post(client, merchant, path, body), 400)
    assert error["code"] == "malformed_json"
    assert "nests too deeply" in error["message"]


def test_nested_json_with_a_unicode_escape_is_checked_like_any_other(client, merchant):
    """A \\u escape makes the guard look for NUL and lone surrogates in the parsed body."""
    plain = b'{"metadata":' + b"[" * NESTED + b'"A"' + b"]" * NESTED + b"}"
    escaped = plain.replace(b'"A"', b'"\\u0041"')
    answers = [post(client, merchant, "/v1/ticket-checkouts", b) for b in (plain, escaped)]
    errors = [error_of(answer, 422) for answer in answers]
    assert errors[0]["details"]["metadata"] == errors[1]["details"]["metadata"]


def test_a_lone_surrogate_deep_in_the_body_is_refused_by_field(client, merchant):
    body = b'{"metadata":' + b"[" * NESTED + b'"\\ud800"' + b"]" * NESTED + b"}"
    error = error_of(post(client, merchant, "/v1/ticket-checkouts", body), 422)
    assert error["code"] == "validation_error"
    assert list(error["details"]) == ["metadata"]
    assert "surrogate" in error["details"]["metadata"][0]


# -- chunked bodies (no Content-Length) over real sockets --------------------------------------


def padded_to(size: int, reservation_id: str) -> bytes:
    """A valid checkout body of exactly `size` bytes (spaces before its closing brace)."""
    body = json.dumps(checkout_payload(reservation_id)).encode()
    return body[:-1] + b" " * (size - len(body)) + b"}"


def post_chunked(
    port: int, body: bytes, headers: dict[str, str], path: str = "/v1/ticket-checkouts",
    coding: str = "chunked",
) -> tuple[int, dict[str, Any]]:  # fmt: skip
    """POST the body in chunks; ``coding`` is the Transfer-Encoding header's spelling."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        chunks = (body[i : i + 65536] for i in range(0, len(body), 65536))
        connection.request(
            "POST", path, body=chunks, encode_chunked=True,
            headers={**headers, "Content-Type": "application/json", "Transfer-Encoding": coding},
        )  # fmt: skip
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def assert_the_limit_is_exact(port: int, auth: dict[str, str]) -> None:
    status, body = post_chunked(port, padded_to(MAX_BODY_BYTES, "res_at_limit"),
                                {**auth, "Idempotency-Key": "at-limit"})  # fmt: skip
    assert status == 201, body
    status, body = post_chunked(port, padded_to(MAX_BODY_BYTES + 1, "res_over_limit"),
                                {**auth, "Idempotency-Key": "over-limit"})  # fmt: skip
    assert (status, body["error"]["code"]) == (413, "payload_too_large"), body
    # Transfer codings are case-insensitive: gunicorn reads "Chunked" as chunked, so must we.
    status, body = post_chunked(port, padded_to(MAX_BODY_BYTES + 1, "res_over_limit_2"),
                                {**auth, "Idempotency-Key": "over-limit-2"}, coding="Chunked")  # fmt: skip
    assert (status, body["error"]["code"]) == (413, "payload_too_large"), body
    # Provider webhooks skip the JSON checks, not the limit.
    webhook = padded_to(MAX_BODY_BYTES + 1, "res_webhook")
    status, body = post_chunked(port, webhook, {}, path="/v1/providers/sandbox/webhooks")
    assert (status, body["error"]["code"]) == (413, "payload_too_large"), body


@contextmanager
def serving(app) -> Iterator[int]:
    """The app on werkzeug's development server, in a thread."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server.server_port
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_a_chunked_body_over_the_limit_is_413_on_werkzeug(app, merchant):
    with serving(app) as port:
        assert_the_limit_is_exact(port, merchant.auth)


@pytest.mark.e2e
def test_a_chunked_body_over_the_limit_is_413_on_gunicorn(database_url, db, tmp_path):
    """gunicorn, with the containers' settings, hands the app its own wsgi.input for chunked
    bodies: the limit holds there too."""
    merchant = make_merchant(db)
    port = free_port()
    env = containers_env(database_url, tmp_path)
    server = Server(
        [str(BIN / "gunicorn"), "--config", str(GUNICORN_CONF), "--bind", f"127.0.0.1:{port}",
         "payment_service.wsgi:app"],
        env, port, tmp_path / "gunicorn.log",
    )  # fmt: skip
    server.start()
    try:
        assert_the_limit_is_exact(port, merchant.auth)
    finally:
        assert server.stop() == 0, server.log()
