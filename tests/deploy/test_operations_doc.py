"""docs/operations.md's walkthrough, run as written: every ```sh block marked
`<!-- tested: NAME -->` runs in bash against a real service (serve + worker processes) after a
paid checkout whose callback went dead, with the doc's example ids replaced by the real ones.
The output must tell the story the doc says it tells, and the replay must reach the platform."""

from __future__ import annotations

import json
import os
import re
import subprocess
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from shared_contracts.signing import verify
from tests.deploy.sources import ROOT
from tests.e2e.buyer import Buyer
from tests.e2e.processes import BIN
from tests.e2e.stack import Stack
from tests.receivers import serving_receiver

pytestmark = pytest.mark.e2e

DOC = ROOT / "docs" / "operations.md"
# The doc's example values, each replaced by the real one of this run.
EXAMPLE_CHECKOUT = "chk_4Yb2Qm7TzL1cWn8RkP0sXe3D"
EXAMPLE_RESERVATION = "res_8f3a2c91d4e7"
EXAMPLE_REQUEST = "req_TAV8Om-VP0hSY2UH"
EXAMPLE_EVENT = "evt_eX0P15hpK2CuNnRQscYkyi2O"
EXAMPLE_URL = "http://127.0.0.1:8000"
PLATFORM_REQUEST = "req_9aK2xB7mQ4tZ1wLc"  # what the platform sends when it creates
ASSIGNMENT = re.compile(r"^[A-Z_]+=\S+$")


def marked_blocks() -> dict[str, str]:
    """Name -> the sh block after its `<!-- tested: NAME -->` marker, in the doc's order."""
    found = re.findall(
        r"<!-- tested: ([\w-]+) -->\n```sh\n(.*?)```", DOC.read_text(), flags=re.DOTALL
    )
    blocks = dict(found)
    assert len(blocks) == len(found), "two tested blocks share a name"
    return blocks


class Walkthrough:
    """Runs the doc's blocks in a directory holding payments.log, as an operator would."""

    def __init__(self, stack: Stack, workdir: Path, ids: dict[str, str]) -> None:
        self.stack, self.workdir, self.ids = stack, workdir, ids
        self.blocks = marked_blocks()
        self.env = {**stack.env, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}

    def gather_logs(self) -> None:
        """The doc's first step (compose or kubectl logs), done the way this stack keeps them."""
        (self.workdir / "payments.log").write_text(
            self.stack.server.log() + self.stack.worker.log()
        )

    def run(self, name: str) -> str:
        """The block, after the variables the blocks before it set; its stdout."""
        names = list(self.blocks)
        earlier = [self.blocks[n] for n in names[: names.index(name)]]
        assignments = [
            line for block in earlier for line in block.splitlines() if ASSIGNMENT.match(line)
        ]
        script = "\n".join(["set -euo pipefail", *assignments, self.blocks[name]])
        for example, real in self.ids.items():
            script = script.replace(example, real)
        done = subprocess.run(
            ["bash", "-c", script], cwd=self.workdir, env=self.env, capture_output=True,
            text=True, timeout=60, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise self.stack.fail(
                f"block {name!r} exited {done.returncode}:\n{script}\n{done.stdout}{done.stderr}"
            )
        return done.stdout


def test_the_doc_marks_the_walkthrough_it_promises():
    blocks = marked_blocks()
    assert list(blocks) == [
        "story", "outline", "from-reservation", "requests", "one-request", "deliveries",
        "dead", "replay", "replayed", "metrics",
    ]  # fmt: skip
    text = "\n".join(blocks.values())
    for example in (
        EXAMPLE_CHECKOUT,
        EXAMPLE_RESERVATION,
        EXAMPLE_REQUEST,
        EXAMPLE_EVENT,
        EXAMPLE_URL,
    ):
        assert example in text, f"{example} is no longer in the tested blocks"
    commands = {
        line.split()[0] for line in text.splitlines() if line and not ASSIGNMENT.match(line)
    }
    assert commands <= {"grep", "payment-service", "curl"}  # nothing an operator must install


def test_a_newcomer_follows_a_paid_checkout_and_replays_its_dead_callback(
    database_url, db, tmp_path
):
    stack = Stack.start(database_url, tmp_path, PAYMENT_CALLBACK_RETRY_SCHEDULE="0,1")
    try:
        walk(stack, tmp_path)
    finally:
        stack.stop()


def walk(stack: Stack, tmp_path: Path) -> None:
    # A platform creates a checkout (with its own request id); nothing listens on its
    # callback URL, so after the buyer pays, the paid callback goes dead.
    created = stack.api(
        "POST", "/v1/ticket-checkouts", json=stack.checkout_payload(),
        headers={"Idempotency-Key": uuid.uuid4().hex, "X-Request-ID": PLATFORM_REQUEST},
    ).json()  # fmt: skip
    checkout_id, reservation_id = created["checkoutId"], created["reservationId"]
    buyer = Buyer(stack)
    try:
        assert buyer.pay(created["checkoutUrl"], "succeeded").query["status"] == "paid"
    finally:
        buyer.close()
    stack.poll(lambda: '"outcome": "dead"' in stack.worker.log(), "the callback to go dead")
    # The request that recorded the payment: the PSP's webhook or the buyer's return, whichever
    # came first. It caused the paid event, so the callback carries its id.
    paid_request = stack.poll(lambda: request_of(stack, "checkout.paid"), "the payment")
    event_id = stack.poll(lambda: event_of(stack), "the callback's event id")

    ids = {
        EXAMPLE_CHECKOUT: checkout_id, EXAMPLE_RESERVATION: reservation_id,
        EXAMPLE_REQUEST: paid_request, EXAMPLE_EVENT: event_id, EXAMPLE_URL: stack.url,
    }  # fmt: skip
    doc = Walkthrough(stack, tmp_path, ids)
    doc.gather_logs()

    story_text = doc.run("story")
    assert all(checkout_id in line for line in story_text.splitlines())
    story = lines(story_text)
    events = [line["event"] for line in story]
    assert events[0] == "http.request" and story[0]["path"] == "/v1/ticket-checkouts"
    assert story[0]["requestId"] == PLATFORM_REQUEST  # the platform's id finds the creation
    for event in ("checkout.provider_session", "checkout.paid", "provider_webhook.received"):
        assert event in events
    attempts = [line for line in story if line["event"] == "callback.attempt"]
    assert [a["outcome"] for a in attempts] == ["pending", "dead"]
    assert attempts[-1]["error"] == "connection failed" and attempts[-1]["eventId"] == event_id

    outline = doc.run("outline").splitlines()
    assert outline == [f'"event": "{event}"' for event in events]
    assert doc.run("from-reservation").split() == ['"checkoutId":', f'"{checkout_id}"']
    requests_seen = doc.run("requests")
    assert f'"requestId": "{PLATFORM_REQUEST}"' in requests_seen
    assert f'"requestId": "{paid_request}"' in requests_seen
    one_request = lines(doc.run("one-request"))
    assert {line["requestId"] for line in one_request} == {paid_request}
    assert "checkout.paid" in {line["event"] for line in one_request}

    for name in ("deliveries", "dead"):
        table = doc.run(name)
        assert table.startswith("EVENT ") and re.search(
            rf"^{event_id}\s+ticket_payment\.paid\s+{checkout_id}\s+{reservation_id}\s+dead\s+2\s+connection failed",
            table, re.MULTILINE,
        ), table  # fmt: skip

    # The platform is back: replay, and the callback arrives where the checkout said.
    with serving_receiver("/hooks", port=urlsplit(stack.platform_url).port) as platform:
        assert f"{event_id}: dead -> pending" in doc.run("replay")
        [callback] = platform.wait_for(1, timeout=15)
        stack.poll(lambda: '"outcome": "delivered"' in stack.worker.log(), "the delivered line")
    verify(stack.signing_secret, callback.headers, callback.body)
    assert callback.headers["webhook-id"] == event_id
    assert callback.event["type"] == "ticket_payment.paid"
    assert callback.event["data"]["checkoutId"] == checkout_id
    # What the platform logs with the callback leads back to the payment in our logs.
    assert callback.headers["x-request-id"] == paid_request

    doc.gather_logs()
    replayed = doc.run("replayed")
    assert re.search(rf"^{event_id}\s.*\sdelivered\s+3\s+HTTP 200", replayed, re.MULTILINE), (
        replayed
    )
    last = json.loads(replayed.strip().splitlines()[-1])
    assert (last["event"], last["statusCode"], last["outcome"]) == (
        "callback.attempt",
        200,
        "delivered",
    )

    metrics = doc.run("metrics")
    assert 'callback_deliveries{status="delivered"} 1.0' in metrics
    assert 'callback_deliveries{status="dead"} 0.0' in metrics
    assert "callback_oldest_due_age_seconds" in metrics


def lines(output: str) -> list[dict]:
    """The JSON log lines of an output (a process may print other lines, e.g. a traceback)."""
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def request_of(stack: Stack, event: str) -> str | None:
    for line in lines(stack.server.log()):
        if line.get("event") == event:
            return str(line["requestId"])
    return None


def event_of(stack: Stack) -> str | None:
    for line in lines(stack.worker.log()):
        if line.get("event") == "callback.attempt":
            return str(line["eventId"])
    return None
