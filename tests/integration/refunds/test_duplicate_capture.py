"""A checkout paid twice (two tabs, two provider sessions): the second capture goes back to the
buyer and the checkout keeps its first payment, on both databases, against the sandbox PSP."""

from __future__ import annotations

from sqlalchemy import select

from payment_service.db import utcnow
from payment_service.payments.models import Payment
from payment_service.payments.services import apply_payment
from tests.integration.refunds.conftest import MAX_ATTEMPTS, PAY_REQUEST_ID, World
from tests.integration.refunds.test_refunds import reject_paid


def capture_again(world: World, checkout_id: str) -> tuple[str, str]:
    """The buyer pays the already paid checkout once more; (our payment id, the sandbox's)."""
    second = world.buyer_pays(checkout_id)
    with world.db.transaction() as tx:
        checkout = apply_payment(
            tx, "sandbox", second, max_attempts=MAX_ATTEMPTS, request_id=PAY_REQUEST_ID
        )
        assert checkout is not None
        ours = tx.scalars(
            select(Payment).where(Payment.provider_payment_id == second.payment_id)
        ).one()
        return ours.id, second.payment_id


def test_a_second_capture_is_refunded_and_the_ticket_stands(world: World) -> None:
    first = world.pay()
    duplicate_id, duplicate_at_sandbox = capture_again(world, first.checkout_id)

    [refund] = world.refund_rows(first.checkout_id)
    assert (refund.payment_id, refund.reason, refund.status) == (
        duplicate_id, "duplicate_capture", "requested",
    )  # fmt: skip
    assert world.deliver() == ["delivered"]  # the one ticket_payment.paid, acknowledged
    assert world.refunds() == 1

    assert world.sandbox_payment(duplicate_at_sandbox)["amountRefunded"] == 30000
    assert world.sandbox_payment(first.provider_payment_id)["amountRefunded"] == 0
    assert world.checkout(first.checkout_id).status == "paid"
    with world.db.transaction() as tx:
        statuses = {p.id: p.status for p in tx.scalars(select(Payment))}
    assert statuses == {first.payment_id: "succeeded", duplicate_id: "refunded"}
    # The platform hears of one payment only: no refunded event for the ticket it holds.
    assert [e.type for e, _ in world.events(first.checkout_id)] == ["ticket_payment.paid"]
    world.run_to_quiescence(utcnow())  # and nothing else is left to do


def test_a_capture_after_the_refund_of_the_first_is_refunded_too(world: World) -> None:
    first = world.pay()
    reject_paid(world)
    assert world.refunds() == 1
    assert world.checkout(first.checkout_id).status == "refunded"

    duplicate_id, duplicate_at_sandbox = capture_again(world, first.checkout_id)
    world.run_to_quiescence(utcnow())

    refunds = {r.payment_id: r for r in world.refund_rows(first.checkout_id)}
    assert set(refunds) == {first.payment_id, duplicate_id}
    assert refunds[duplicate_id].status == "succeeded"
    assert world.sandbox_payment(duplicate_at_sandbox)["amountRefunded"] == 30000
    assert world.checkout(first.checkout_id).status == "refunded"
