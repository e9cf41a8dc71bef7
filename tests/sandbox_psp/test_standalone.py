"""``python -m payment_service.sandbox_psp`` runs the sandbox alone, reachable over real HTTP."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.sandbox_psp.conftest import session_body

pytestmark = pytest.mark.e2e
REPO_ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def standalone(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    env = {
        **os.environ,
        "SANDBOX_API_KEY": "sbx_e2e_key",
        "SANDBOX_DATABASE_URL": f"sqlite:///{tmp_path / 'standalone.db'}",
    }
    with (tmp_path / "server.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "payment_service.sandbox_psp", "--port", str(port)],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                requests.get(base + "/", timeout=1).close()
                break
            except requests.ConnectionError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError((tmp_path / "server.log").read_text()) from None
                time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_the_standalone_server_speaks_http(standalone: str) -> None:
    auth = {"Authorization": "Bearer sbx_e2e_key"}
    with requests.Session() as http:
        assert http.get(f"{standalone}/api/sessions/x", timeout=5).status_code == 401
        created = http.post(
            f"{standalone}/api/sessions", json=session_body(), headers=auth, timeout=5
        )
        assert created.status_code == 201
        session = created.json()
        assert session["url"] == f"{standalone}/pay/{session['id']}"
        page = http.get(session["url"], timeout=5)
        assert page.status_code == 200 and "₩30,000" in page.text
        paid = http.post(
            session["url"], data={"outcome": "succeeded"}, allow_redirects=False, timeout=5
        )
        assert paid.status_code == 303
        assert (
            http.get(f"{standalone}/api/sessions/{session['id']}", headers=auth, timeout=5).json()[
                "status"
            ]
            == "complete"
        )
