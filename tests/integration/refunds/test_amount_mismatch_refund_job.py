"""The refund job and a capture of the wrong amount: the money goes back, the checkout and the
platform are left alone (as for a duplicate capture), against the real sandbox PSP."""

from __future__ import annotations

from payment_service.db import utcnow
from payment_service.payments.services import apply_payment
from payment_service.providers.base import ProviderPayment
from tests.integration.callbacks.conftest import add_checkout
from tests.integration.refunds.conftest import MAX_ATTEMPTS, PAY_REQUEST_ID, World


def pays(world: World, checkout_id: str, amount: int) -> ProviderPayment:
    """The buyer pays ``amount`` KRW in a new sandbox session, and the payment is recorded."""
    payment = world.buyer_pays(checkout_id, amount)
    with world.db.transaction() as tx:
        apply_payment(tx, "sandbox", payment, max_attempts=MAX_ATTEMPTS, request_id=PAY_REQUEST_ID)
    return payment


def test_a_wrong_amount_is_refunded_and_the_right_payment_keeps_the_ticket(world: World) -> None:
    checkout_id = add_checkout(world.db, world.merchant.merchant_id, world.receiver.url("/hooks"))
    wrong = pays(world, checkout_id, 10)
    right = pays(world, checkout_id, 30000)
    world.run_to_quiescence(utcnow())

    [refund] = world.refund_rows(checkout_id)
    assert (refund.reason, refund.status, refund.amount) == ("amount_mismatch", "succeeded", 10)
    assert world.sandbox_payment(wrong.payment_id)["amountRefunded"] == 10
    assert world.sandbox_payment(right.payment_id)["amountRefunded"] == 0
    assert world.checkout(checkout_id).status == "paid"
    assert [e.type for e, _ in world.events(checkout_id)] == ["ticket_payment.paid"]


def test_a_wrong_amount_on_an_open_checkout_sends_nothing(world: World) -> None:
    checkout_id = add_checkout(world.db, world.merchant.merchant_id, world.receiver.url("/hooks"))
    pays(world, checkout_id, 10)
    world.run_to_quiescence(utcnow())

    [refund] = world.refund_rows(checkout_id)
    assert (refund.reason, refund.status) == ("amount_mismatch", "succeeded")
    assert world.checkout(checkout_id).status == "open"
    assert world.events(checkout_id) == []
