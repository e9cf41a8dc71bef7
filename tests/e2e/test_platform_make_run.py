"""`make run`'s script on a clean checkout, and the README's walk-through against it.

deploy/local/run.sh runs in a fresh directory (its own var/, the project's packages and .venv
linked in), on free ports instead of 8000/8001. A buyer then does what the README says: open
the printed event address, register for the Full course, pay ₩30,000 with the sandbox, and see
"You're registered" and the registration under My registrations.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path
from urllib.parse import urljoin

import pytest
import requests

from tests.e2e.buyer import Page
from tests.e2e.processes import free_port

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
LINKED = (".venv", "payment_service", "platform_client", "shared_contracts")


def fresh_checkout(root: Path) -> Path:
    root.mkdir()
    shutil.copytree(REPO / "deploy", root / "deploy")
    for name in LINKED:
        (root / name).symlink_to(REPO / name)
    return root


def wait_for_line(process: subprocess.Popen[bytes], log: Path, prefix: str) -> str:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith(prefix):
                return line[len(prefix) :].strip()
        if process.poll() is not None:
            break
        time.sleep(0.2)
    raise AssertionError(f"no {prefix!r} line from run.sh:\n{log.read_text(errors='replace')}")


class Walk:
    """The README's steps with a plain HTTP client that follows no redirect by itself."""

    def __init__(self, log: Path) -> None:
        self.http = requests.Session()
        self.log = log

    def page(self, url: str) -> Page:
        response = self.http.get(url, timeout=20)
        assert response.status_code == 200, f"GET {url}: {response.status_code}\n{self.logs()}"
        return Page.parse(response.url, response)

    def press(self, page: Page, fill: dict[str, str] | None = None, **button: str) -> str:
        found = page.find(**button)
        assert found is not None, f"no {button} on {page.url}:\n{page.html[:2000]}"
        form = page.form_of(found)
        data = {**form.inputs, **(fill or {})}
        if found.attrs.get("name"):
            data[found.attrs["name"]] = found.attrs.get("value", "")
        response = self.http.post(
            urljoin(page.url, form.action), data=data, allow_redirects=False, timeout=20
        )
        assert response.status_code in (302, 303), f"{response.status_code}\n{response.text}"
        return urljoin(page.url, response.headers["Location"])

    def logs(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-40:])


def test_make_run_serves_the_readme_walkthrough(tmp_path: Path) -> None:
    root = fresh_checkout(tmp_path / "clone")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PAYMENT_", "PLATFORM_", "SANDBOX_"))
    }
    env.update(PAYMENT_PORT=str(free_port()), PLATFORM_PORT=str(free_port()))
    log = tmp_path / "make-run.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            ["bash", str(root / "deploy" / "local" / "run.sh")],
            cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    walk = Walk(log)
    try:
        event_url = wait_for_line(process, log, "Open the event:")
        event = walk.page(event_url)  # 1. the event, its tiers and places left
        assert event.text(data_field="event-name") == "Seoul Marathon 2027"
        assert "₩30,000" in (event.text(data_tier="tier_full_krw") or ""), event.html
        link = event.find(data_action="register", data_tier_id="tier_full_krw")
        assert link is not None, event.html

        form = walk.page(urljoin(event_url, link.attrs["href"]))  # 2. the form
        answers = {"name": "Kim", "email": "kim@example.com", "answer": "M"}
        checkout_url = walk.press(form, answers, data_action="register")
        assert walk.page(event_url).find(data_tier="tier_full_krw", data_seats_left="99")

        provider_url = walk.press(walk.page(checkout_url), data_action="pay")  # 3. pay
        return_url = walk.press(walk.page(provider_url), data_outcome="succeeded")
        back = walk.http.get(return_url, allow_redirects=False, timeout=20)
        processing = urljoin(return_url, back.headers["Location"])
        assert re.search(r"/reservations/res_[^?]+\?return=success", processing), processing

        deadline = time.monotonic() + 30  # 4. "payment processing" until the callback lands
        while not walk.page(processing).find(data_status="confirmed"):
            assert time.monotonic() < deadline, f"never confirmed\n{walk.logs()}"
            time.sleep(1)
        assert walk.page(processing).text(data_field="title") == "You're registered"

        mine = walk.page(urljoin(event_url, "/my/registrations"))  # 5. my registrations
        assert mine.find(data_tier="tier_full_krw", data_status="confirmed"), mine.html
    finally:
        walk.http.close()
        process.send_signal(signal.SIGTERM)  # as Ctrl-C does: run.sh stops all three
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
            raise AssertionError(f"run.sh did not stop on SIGTERM\n{walk.logs()}") from None
    leftovers = subprocess.run(
        ["pgrep", "-s", str(process.pid)], capture_output=True, text=True, check=False
    )
    assert leftovers.stdout.strip() == "", f"processes left running: {leftovers.stdout}"
