"""A rejected ticket_payment.paid refunds the payment at the provider (CONTRACT §6, §8), on both
databases, against the real sandbox PSP over HTTP."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select, update
from structlog.testing import capture_logs

from payment_service.callbacks.models import Delivery
from payment_service.db import utcnow
from payment_service.payments.models import Payment
from payment_service.payments.refunds import (
    NEEDS_ATTENTION_AFTER,
    backoff,
    platform_rejection_reason,
    request_refund,
)
from payment_service.worker import Worker
from tests.integration.refunds.conftest import (
    PAY_REQUEST_ID,
    REJECTION,
    Reply,
    World,
    configure,
)


def reject_paid(world: World, code: int = 409, body: bytes = REJECTION) -> None:
    world.receiver.script(Reply(code, body))
    assert world.deliver() == ["rejected"]


def test_a_rejected_paid_callback_refunds_the_payment(world: World) -> None:
    paid = world.pay()
    reject_paid(world)

    [refund] = world.refund_rows(paid.checkout_id)
    assert (refund.status, refund.payment_id, refund.amount, refund.currency) == (
        "requested", paid.payment_id, 30000, "KRW",
    )  # fmt: skip
    assert refund.id.startswith("rfd_") and refund.reason == "platform_rejected:registration_closed"
    assert world.checkout(paid.checkout_id).status == "paid"  # until the provider has refunded

    assert world.refunds() == 1

    assert world.provider.refund_keys == [f"refund:{refund.id}"]
    at_sandbox = world.sandbox_payment(paid.provider_payment_id)
    assert (at_sandbox["amountRefunded"], at_sandbox["amount"]) == (30000, 30000)
    [refund] = world.refund_rows(paid.checkout_id)
    assert refund.status == "succeeded" and (refund.provider_refund_id or "").startswith("sbr_")
    assert refund.completed_at is not None and refund.attempts == 0
    assert world.checkout(paid.checkout_id).status == "refunded"
    with world.db.transaction() as tx:
        payment = tx.get(Payment, paid.payment_id)
        assert payment is not None and payment.status == "refunded"

    [(paid_event, paid_delivery), (refunded, delivery)] = world.events(paid.checkout_id)
    assert (paid_event.id, paid_delivery.status) == (paid.paid_event_id, "rejected")
    assert refunded.type == "ticket_payment.refunded" and delivery.status == "pending"
    assert refunded.request_id == PAY_REQUEST_ID  # the request that caused it all
    data = refunded.payload["data"]
    assert (data["paymentId"], data["refundId"], data["reason"]) == (
        paid.payment_id, refund.id, "platform_rejected:registration_closed",
    )  # fmt: skip
    assert (data["checkoutId"], data["amount"]) == (paid.checkout_id, 30000)

    assert world.deliver() == ["delivered"]
    sent = world.receiver.received[-1]
    assert sent.headers["webhook-id"] == refunded.id
    assert json.loads(sent.body)["type"] == "ticket_payment.refunded"
    assert world.refunds() == 0  # nothing more to do


@pytest.mark.parametrize(
    ("code", "body", "reason"),
    [
        (422, b'{"error":{"code":"validation_error"}}', "platform_rejected:validation_error"),
        (410, b'{"error":{"code":"reservation_gone"}}', "platform_rejected:reservation_gone"),
        (409, b'{"error":{"code":"no spaces; or <html>"}}', "platform_rejected"),
    ],
)
def test_every_rejection_code_starts_a_refund(
    world: World, code: int, body: bytes, reason: str
) -> None:
    paid = world.pay()
    reject_paid(world, code, body)
    [refund] = world.refund_rows(paid.checkout_id)
    assert (refund.status, refund.reason) == ("requested", reason)


def test_a_second_rejection_creates_no_second_refund(world: World) -> None:
    paid = world.pay()
    reject_paid(world)
    [first] = world.refund_rows()

    # The same event delivered again (an operator's replay) and rejected again.
    with world.db.transaction() as tx:
        tx.execute(
            update(Delivery).where(Delivery.checkout_id == paid.checkout_id)
            .values(status="pending", next_attempt_at=utcnow())
        )  # fmt: skip
    reject_paid(world, 422)
    assert [r.id for r in world.refund_rows()] == [first.id]
    with world.db.transaction() as tx:
        again = request_refund(tx, paid.checkout_id, "another reason", None)
        assert again is not None and again.id == first.id

    assert world.refunds() == 1
    assert world.refunds(utcnow() + timedelta(hours=2)) == 0
    assert len(world.provider.refund_keys) == 1
    assert world.sandbox_payment(paid.provider_payment_id)["amountRefunded"] == 30000
    refunded = [e for e, _ in world.events(paid.checkout_id) if e.type == "ticket_payment.refunded"]
    assert len(refunded) == 1


def test_a_refund_without_a_captured_payment_is_not_written(world: World) -> None:
    paid = world.pay()
    with world.db.transaction() as tx:
        tx.execute(update(Payment).values(status="declined"))
    with capture_logs() as logs, world.db.transaction() as tx:
        assert request_refund(tx, paid.checkout_id, "platform_rejected", None) is None
    assert world.refund_rows() == []
    assert [e["log_level"] for e in logs if e["event"] == "refund.no_captured_payment"] == ["error"]


def test_provider_down_is_retried_with_the_same_key_until_it_succeeds(world: World) -> None:
    paid = world.pay()
    reject_paid(world)
    configure(world.sandbox_url, down=True)
    start = utcnow()

    with capture_logs() as logs:
        assert world.refunds(start) == 1
    [refund] = world.refund_rows()
    assert (refund.status, refund.attempts) == ("requested", 1)
    assert refund.next_attempt_at == start + timedelta(seconds=5)
    assert refund.last_error is not None and "503" in refund.last_error
    [retry] = [e for e in logs if e["event"] == "refund.retry"]
    assert (retry["checkoutId"], retry["attempt"], retry["log_level"]) == (
        paid.checkout_id, 1, "warning",
    )  # fmt: skip
    assert retry["error"] == refund.last_error
    assert world.checkout(paid.checkout_id).status == "paid"

    assert world.refunds(start + timedelta(seconds=4)) == 0  # not due yet
    assert world.refunds(start + timedelta(seconds=6)) == 1  # due, still down
    [refund] = world.refund_rows()
    assert refund.attempts == 2
    assert refund.next_attempt_at == start + timedelta(seconds=6 + 30)

    configure(world.sandbox_url, down=False)
    assert world.refunds(start + timedelta(seconds=37)) == 1
    [refund] = world.refund_rows()
    assert (refund.status, refund.attempts) == ("succeeded", 2)
    assert world.provider.refund_keys == [f"refund:{refund.id}"] * 3
    assert world.sandbox_payment(paid.provider_payment_id)["amountRefunded"] == 30000
    assert world.checkout(paid.checkout_id).status == "refunded"


def test_a_refund_that_keeps_failing_keeps_being_retried_and_asks_for_attention(
    world: World,
) -> None:
    world.pay()
    reject_paid(world)
    configure(world.sandbox_url, down=True)
    now = utcnow()
    levels = []
    for _ in range(NEEDS_ATTENTION_AFTER + 2):
        with capture_logs() as logs:
            assert world.refunds(now) == 1
        levels.append(sorted(e["event"] for e in logs if e["event"].startswith("refund.")))
        [refund] = world.refund_rows()
        now = refund.next_attempt_at
    assert levels[: NEEDS_ATTENTION_AFTER - 1] == [["refund.retry"]] * (NEEDS_ATTENTION_AFTER - 1)
    assert levels[NEEDS_ATTENTION_AFTER - 1 :] == [["refund.needs_attention", "refund.retry"]] * 3
    [refund] = world.refund_rows()
    assert (refund.status, refund.attempts) == ("requested", NEEDS_ATTENTION_AFTER + 2)

    configure(world.sandbox_url, down=False)
    assert world.refunds(now) == 1
    assert world.refund_rows()[0].status == "succeeded"


def test_backoff_steps_then_hourly() -> None:
    assert [backoff(n).total_seconds() for n in range(1, 9)] == [
        5, 30, 300, 1800, 3600, 3600, 3600, 3600,
    ]  # fmt: skip


def test_rejection_reasons() -> None:
    assert platform_rejection_reason(REJECTION.decode()) == "platform_rejected:registration_closed"
    for excerpt in (None, "", "{", "[]", '{"error": "x"}', '{"error": {"code": 7}}'):
        assert platform_rejection_reason(excerpt) == "platform_rejected"


def test_a_refund_the_provider_refuses_fails_and_is_logged(world: World) -> None:
    paid = world.pay()
    reject_paid(world)
    # Someone refunded it at the provider already (a dashboard): ours is refused for good.
    world.provider.inner.refund(
        paid.provider_payment_id, 30000, idempotency_key="by-hand", reason="dashboard"
    )

    with capture_logs() as logs:
        assert world.refunds() == 1
    [refund] = world.refund_rows()
    assert refund.status == "failed" and "already fully refunded" in (refund.last_error or "")
    [failed] = [e for e in logs if e["event"] == "refund.failed"]
    assert failed["log_level"] == "error"
    assert (failed["checkoutId"], failed["refundId"]) == (paid.checkout_id, refund.id)
    assert world.checkout(paid.checkout_id).status == "paid"
    assert world.refunds(utcnow() + timedelta(days=1)) == 0  # final: not retried


def test_the_worker_runs_the_refund_job(world: World) -> None:
    paid = world.pay()
    reject_paid(world)
    worker = Worker(world.db, world.registry)
    try:
        assert worker.run_once()["refunds"] == 1
    finally:
        worker.close()
    assert world.checkout(paid.checkout_id).status == "refunded"


def test_every_captured_payment_ends_acknowledged_or_refunded(world: World) -> None:
    """The invariant of issue 5: whatever the platform answers, no captured payment is left
    neither acknowledged by the platform nor refunded."""
    plans = {
        "/hooks/ok": [],
        "/hooks/ok-after-503": [Reply(503, b"busy"), Reply(503, b"busy")],
        "/hooks/conflict": [Reply(409, REJECTION)],
        "/hooks/invalid": [Reply(422, b'{"error":{"code":"validation_error"}}')],
        "/hooks/gone": [Reply(410, b'{"error":{"code":"reservation_gone"}}')],
        # A proxy's 409 page is not the platform's refusal: retried, then delivered.
        "/hooks/proxy-409-then-ok": [Reply(409, b"<html>409 Conflict (proxy)</html>")],
        "/hooks/conflict-after-503": [Reply(503, b""), Reply(409, REJECTION)],
        "/hooks/conflict-refund-rejected": [Reply(409, REJECTION), Reply(409, REJECTION)],
    }
    paid = {}
    for path, replies in plans.items():
        for copy in range(2):
            world.receiver.script_path(path, *replies)
            paid[(path, copy)] = world.pay(path)

    # The provider is down for the first refund round: the money still comes back later.
    start = utcnow()
    world.deliver(start)
    configure(world.sandbox_url, down=True)
    world.refunds(start)
    configure(world.sandbox_url, down=False)
    world.run_to_quiescence(start + timedelta(seconds=1))

    with world.db.transaction() as tx:
        payments = {p.id: p for p in tx.scalars(select(Payment))}
    assert len(payments) == len(paid)
    refunds = {r.payment_id: r for r in world.refund_rows()}
    for (path, _), p in paid.items():
        events = world.events(p.checkout_id)
        paid_delivery = next(d for e, d in events if e.id == p.paid_event_id)
        acknowledged = paid_delivery.status == "delivered"
        refund = refunds.get(p.payment_id)
        refunded = (
            refund is not None
            and refund.status == "succeeded"
            and payments[p.payment_id].status == "refunded"
            and world.checkout(p.checkout_id).status == "refunded"
            and world.sandbox_payment(p.provider_payment_id)["amountRefunded"] == 30000
            and any(e.type == "ticket_payment.refunded" for e, _ in events)
        )
        assert acknowledged != refunded, (path, paid_delivery.status, refund)  # one, never both
        acknowledged_paths = ("/hooks/ok", "/hooks/ok-after-503", "/hooks/proxy-409-then-ok")
        assert refunded == (path not in acknowledged_paths), path
    # Each refund was asked of the provider under its own key, whatever the retries.
    assert set(world.provider.refund_keys) == {f"refund:{r.id}" for r in refunds.values()}
