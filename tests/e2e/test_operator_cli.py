"""Operator commands as real processes: `deliveries list`, `deliveries replay` and
`callbacks send-test`, against a database migrated and seeded the way an operator's is."""

from __future__ import annotations

import json

import pytest

from shared_contracts.signing import verify
from tests.e2e.processes import run_cli, service_env
from tests.integration.callbacks.conftest import add_checkout, add_event
from tests.integration.callbacks.helpers import delivery_of
from tests.integration.operations.helpers import force_status
from tests.receivers import serving_receiver

pytestmark = pytest.mark.e2e


@pytest.fixture
def receiver():
    with serving_receiver() as running:
        yield running


@pytest.fixture
def env(database_url, db):
    return service_env(database_url, PAYMENT_ALLOW_PRIVATE_CALLBACKS="1")


@pytest.fixture
def merchant(env, receiver):
    """Migrated with the CLI, then a merchant created with it whose callbacks may go to the
    local receiver."""
    upgraded = run_cli(["db", "upgrade"], env)
    assert upgraded.returncode == 0, upgraded.stderr
    origin = receiver.url.removesuffix("/hooks")
    created = run_cli(
        ["merchants", "create", "--name", "Ops Co", "--callback-origin", origin,
         "--redirect-origin", origin, "--allow-http", "--json"], env,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    return json.loads(created.stdout)


def test_list_then_replay_dead_pending_delivered_and_unknown(env, db, merchant, receiver):
    checkout_id = add_checkout(db, merchant["merchantId"], receiver.url)
    dead = add_event(db, checkout_id)
    pending = add_event(db, add_checkout(db, merchant["merchantId"], receiver.url))
    delivered = add_event(db, add_checkout(db, merchant["merchantId"], receiver.url))
    force_status(db, dead, "dead")
    force_status(db, delivered, "delivered")

    listed = run_cli(["deliveries", "list", "--status", "dead", "--json"], env)
    assert listed.returncode == 0, listed.stderr
    [row] = json.loads(listed.stdout)
    assert (row["eventId"], row["status"], row["checkoutId"]) == (dead, "dead", checkout_id)
    assert row["type"] == "ticket_payment.expired" and row["reservationId"].startswith("res_")
    assert set(row) >= {"attempts", "lastStatusCode", "lastError", "nextAttemptAt", "createdAt"}

    everything = json.loads(run_cli(["deliveries", "list", "--json"], env).stdout)
    assert [r["eventId"] for r in everything] == [delivered, pending, dead]  # newest first
    by_checkout = run_cli(["deliveries", "list", "--checkout", checkout_id, "--json"], env)
    assert [r["eventId"] for r in json.loads(by_checkout.stdout)] == [dead]
    table = run_cli(["deliveries", "list", "--status", "dead"], env)
    assert table.returncode == 0
    assert "EVENT" in table.stdout and dead in table.stdout and pending not in table.stdout

    replayed = run_cli(["deliveries", "replay", dead], env)
    assert replayed.returncode == 0, replayed.stderr
    assert f"{dead}: dead -> pending" in replayed.stdout
    assert delivery_of(db, dead).status == "pending"
    again = run_cli(["deliveries", "replay", dead], env)
    assert again.returncode == 0 and "already pending" in again.stdout

    refused = run_cli(["deliveries", "replay", delivered], env)
    assert refused.returncode == 1 and "--force" in refused.stderr
    assert delivery_of(db, delivered).status == "delivered"
    forced = run_cli(["deliveries", "replay", delivered, "--force", "--json"], env)
    assert forced.returncode == 0, forced.stderr
    assert json.loads(forced.stdout)["previousStatus"] == "delivered"
    assert delivery_of(db, delivered).status == "pending"

    unknown = run_cli(["deliveries", "replay", "evt_nothing"], env)
    assert unknown.returncode == 1
    assert "no event evt_nothing" in unknown.stderr and "Traceback" not in unknown.stderr


def test_send_test_delivers_a_signed_sample(env, merchant, receiver):
    result = run_cli(
        ["callbacks", "send-test", "--merchant", merchant["merchantId"], "--url", receiver.url,
         "--type", "ticket_payment.refunded"], env,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    [received] = receiver.wait_for(1)
    verify(merchant["signingSecret"], received.headers, received.body)
    event_id = received.headers["webhook-id"]
    assert event_id.startswith("evt_test_")
    assert received.event["type"] == "ticket_payment.refunded"
    assert {"refundId", "paymentId", "reason"} <= set(received.event["data"])
    assert event_id in result.stdout and "HTTP 200" in result.stdout and " ms" in result.stdout


def test_send_test_exits_1_on_an_error_answer(env, merchant, receiver):
    receiver.statuses.append(500)
    result = run_cli(
        ["callbacks", "send-test", "--merchant", merchant["merchantId"], "--url", receiver.url],
        env,
    )
    assert result.returncode == 1
    assert "HTTP 500" in result.stdout
    assert len(receiver.wait_for(1)) == 1


def test_send_test_honours_the_allowlist_and_private_callbacks(env, merchant, receiver):
    off_list = run_cli(
        ["callbacks", "send-test", "--merchant", merchant["merchantId"], "--url",
         "https://elsewhere.example/hooks"], env,
    )  # fmt: skip
    assert off_list.returncode == 1 and "not one of the allowed origins" in off_list.stderr

    private = run_cli(
        ["callbacks", "send-test", "--merchant", merchant["merchantId"], "--url", receiver.url],
        {**env, "PAYMENT_ALLOW_PRIVATE_CALLBACKS": "0"},
    )
    assert private.returncode == 1 and "refused" in private.stdout
    assert receiver.settle(0.2) == []


def test_refunds_list_shows_the_ones_that_need_a_person(env, db, merchant, receiver):
    from payment_service.db import utcnow
    from payment_service.payments.models import Payment, Refund

    checkout_ids = [add_checkout(db, merchant["merchantId"], receiver.url) for _ in range(2)]
    now = utcnow()
    with db.transaction() as session:
        for n, (checkout_id, status) in enumerate(
            zip(checkout_ids, ["failed", "succeeded"], strict=True)
        ):
            session.add(Payment(id=f"pay_{n}", checkout_id=checkout_id, merchant_id=merchant["merchantId"],
                                provider="sandbox", provider_payment_id=f"sbp_{n}", status="succeeded",
                                amount=30000, currency="KRW", occurred_at=now))  # fmt: skip
            session.flush()
            session.add(Refund(id=f"rfd_{n}", payment_id=f"pay_{n}", checkout_id=checkout_id,
                               merchant_id=merchant["merchantId"], provider="sandbox", amount=30000,
                               currency="KRW", reason="platform_rejected", status=status, attempts=n,
                               next_attempt_at=now, created_at=now,
                               last_error="sandbox: HTTP 409: already refunded" if status == "failed" else None))  # fmt: skip

    failed = run_cli(["refunds", "list", "--status", "failed", "--json"], env)
    assert failed.returncode == 0, failed.stderr
    [row] = json.loads(failed.stdout)
    assert (row["refundId"], row["checkoutId"], row["status"]) == (
        "rfd_0",
        checkout_ids[0],
        "failed",
    )
    assert row["lastError"] == "sandbox: HTTP 409: already refunded"
    everything = run_cli(["refunds", "list"], env)
    assert everything.returncode == 0
    assert (
        "rfd_0" in everything.stdout
        and "rfd_1" in everything.stdout
        and "failed" in everything.stdout
    )
    # The count is of failed provider calls, and says so (a refund done at once shows 0).
    assert "failed_calls=" in everything.stdout and "attempts=" not in everything.stdout
