"""GET names the payment that paid the checkout, the one its ticket_payment.paid names, never a
capture refunded without being applied, whatever time the provider gives that capture."""

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from payment_service.callbacks.models import CallbackEvent
from payment_service.payments.models import Payment, Refund
from tests.factories import sandbox_payment_webhook


def webhook(client, checkout_id, payment_id, occurred_at, **overrides):
    body, headers = sandbox_payment_webhook(
        checkout_id,
        payment_id=payment_id,
        occurred_at=occurred_at.isoformat().replace("+00:00", "Z"),
        **overrides,
    )
    response = client.post("/v1/providers/sandbox/webhooks", data=body, headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)


def paid_event(db):
    with db.transaction() as session:
        event = session.scalars(
            select(CallbackEvent).where(CallbackEvent.type == "ticket_payment.paid")
        ).one()
        return event.payload["data"]


def refunded_payment(db, reason):
    with db.transaction() as session:
        refund = session.scalars(select(Refund)).one()
        assert refund.reason == reason
        return session.get(Payment, refund.payment_id)


def test_a_duplicate_capture_that_happened_earlier_is_not_the_checkouts_payment(
    db, client, merchant, create
):
    checkout_id = create().get_json()["checkoutId"]
    now = datetime.now(UTC)
    webhook(client, checkout_id, "sbp_applied", now)
    # The other tab's capture happened first at the provider; its webhook comes late.
    webhook(client, checkout_id, "sbp_duplicate", now - timedelta(seconds=30))

    paid = paid_event(db)
    duplicate = refunded_payment(db, "duplicate_capture")
    assert duplicate.provider_payment_id == "sbp_duplicate"
    got = client.get(f"/v1/ticket-checkouts/{checkout_id}", headers=merchant.auth).get_json()
    assert got["payment"]["paymentId"] == paid["paymentId"] != duplicate.id
    assert got["payment"]["txId"] == paid["txId"] == "sbtx_applied"
    assert got["payment"]["paidAt"] == got["paidAt"]


def test_a_capture_of_another_amount_is_not_the_checkouts_payment(db, client, merchant, create):
    checkout_id = create().get_json()["checkoutId"]
    now = datetime.now(UTC)
    webhook(client, checkout_id, "sbp_wrong", now - timedelta(seconds=30), amount=10)
    webhook(client, checkout_id, "sbp_right", now)

    paid = paid_event(db)
    assert refunded_payment(db, "amount_mismatch").provider_payment_id == "sbp_wrong"
    got = client.get(f"/v1/ticket-checkouts/{checkout_id}", headers=merchant.auth).get_json()
    assert got["payment"]["paymentId"] == paid["paymentId"]
    assert got["payment"]["txId"] == "sbtx_right"
