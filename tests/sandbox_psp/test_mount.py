"""Mounted under /sandbox of another server (DispatcherMiddleware), every URL keeps the prefix."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.test import Client

from tests.sandbox_psp.conftest import API_KEY, session_body

AUTH = {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture
def server(sandbox_app: Flask) -> Iterator[Client]:
    outer = Flask("outer")

    @outer.get("/")
    def home() -> str:
        return "payment service"

    yield Client(DispatcherMiddleware(outer, {"/sandbox": sandbox_app}))


def test_page_urls_and_forms_carry_the_mount_prefix(server: Client) -> None:
    created = server.post("/sandbox/api/sessions", json=session_body(), headers=AUTH)
    assert created.status_code == 201
    session = created.json
    assert session["url"] == f"http://localhost/sandbox/pay/{session['id']}"

    page = server.get(f"/sandbox/pay/{session['id']}")
    assert page.status_code == 200
    assert f'action="/sandbox/pay/{session["id"]}"' in page.text

    paid = server.post(f"/sandbox/pay/{session['id']}", data={"outcome": "succeeded"})
    assert paid.status_code == 303
    assert paid.location.endswith(f"session_id={session['id']}")
    fetched = server.get(f"/sandbox/api/sessions/{session['id']}", headers=AUTH).json
    assert fetched["status"] == "complete"


def test_the_host_of_the_api_call_names_the_page(server: Client) -> None:
    created = server.post(
        "/sandbox/api/sessions",
        json=session_body(),
        headers=AUTH,
        base_url="https://pay.example.com",
    )
    assert created.json["url"].startswith("https://pay.example.com/sandbox/pay/sbs_")


def test_the_outer_server_keeps_its_own_routes(server: Client) -> None:
    assert server.get("/").text == "payment service"
    assert server.get("/sandbox/api/sessions/x").status_code == 401
    assert server.get("/api/sessions/x").status_code == 404
