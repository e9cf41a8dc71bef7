"""A provider confirmation of another amount or currency than the checkout's is recorded and
refunded, and never pays the checkout."""

import pytest
from sqlalchemy import select

from payment_service.callbacks.models import CallbackEvent
from payment_service.checkouts.models import Checkout
from payment_service.payments.models import Payment, Refund
from tests.factories import sandbox_payment_webhook


def checkout(db, checkout_id):
    with db.transaction() as session:
        return session.get(Checkout, checkout_id)


def payment(db, provider_payment_id):
    with db.transaction() as session:
        return session.scalars(
            select(Payment).where(Payment.provider_payment_id == provider_payment_id)
        ).one()


def refunds(db):
    with db.transaction() as session:
        return list(session.scalars(select(Refund).order_by(Refund.created_at)))


def events(db):
    with db.transaction() as session:
        return [
            (e.type, e.payload["data"])
            for e in session.scalars(select(CallbackEvent).order_by(CallbackEvent.seq))
        ]


@pytest.mark.parametrize(("amount", "currency"), [(10, "KRW"), (30000, "USD"), (10, "USD")])
def test_a_capture_of_another_amount_is_refunded_and_the_checkout_stays_open(
    db, client, merchant, open_checkout, post_webhook, amount, currency
):
    wrong = sandbox_payment_webhook(
        open_checkout, payment_id="sbp_wrong", amount=amount, currency=currency
    )
    assert post_webhook(*wrong).status_code == 200
    assert post_webhook(*wrong).get_json()["duplicate"] is True

    unchanged = checkout(db, open_checkout)
    assert (unchanged.status, unchanged.late, unchanged.paid_at, unchanged.attempts) == (
        "open", False, None, 0,
    )  # fmt: skip
    recorded = payment(db, "sbp_wrong")
    assert (recorded.status, recorded.amount, recorded.currency) == ("succeeded", amount, currency)
    [refund] = refunds(db)
    assert (refund.payment_id, refund.reason, refund.status) == (
        recorded.id, "amount_mismatch", "requested",
    )  # fmt: skip
    assert (refund.amount, refund.currency) == (amount, currency)
    assert events(db) == []

    # The buyer can still pay the right amount, and that payment is the checkout's.
    right_hook = sandbox_payment_webhook(open_checkout, payment_id="sbp_right")
    assert post_webhook(*right_hook).status_code == 200
    right = payment(db, "sbp_right")
    assert checkout(db, open_checkout).status == "paid"
    [(event_type, data)] = events(db)
    assert event_type == "ticket_payment.paid"
    assert (data["paymentId"], data["amount"], data["currency"]) == (right.id, 30000, "KRW")
    assert len(refunds(db)) == 1
    got = client.get(f"/v1/ticket-checkouts/{open_checkout}", headers=merchant.auth).get_json()
    assert got["payment"]["paymentId"] == right.id


def test_a_late_capture_of_another_amount_is_refunded_and_the_checkout_stays_canceled(
    db, client, merchant, open_checkout, post_webhook
):
    client.post(f"/v1/ticket-checkouts/{open_checkout}/cancel", headers=merchant.auth)
    wrong = sandbox_payment_webhook(open_checkout, payment_id="sbp_wrong", amount=10)
    assert post_webhook(*wrong).status_code == 200

    assert checkout(db, open_checkout).status == "canceled"
    [refund] = refunds(db)
    assert (refund.payment_id, refund.reason) == (payment(db, "sbp_wrong").id, "amount_mismatch")
    assert [t for t, _ in events(db)] == ["ticket_payment.canceled"]
