"""A payment confirmed after its checkout left `open` is recorded and sent (CONTRACT §6), also
when the platform has made the reservation's next checkout meanwhile."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from payment_service.checkouts.expiry import expire_due
from payment_service.checkouts.models import Checkout
from payment_service.payments.models import Payment
from tests.factories import checkout_payload, sandbox_payment_webhook
from tests.integration.payments.test_provider_webhooks import checkout, events


def create(client, merchant, key):
    return client.post(
        "/v1/ticket-checkouts",
        json=checkout_payload(),
        headers={**merchant.auth, "Idempotency-Key": key},
    )


def leave_open(how, db, client, merchant, checkout_id, post_webhook):
    """The checkout leaves `open` the way `how` names, before the buyer's payment arrives."""
    if how == "canceled":
        client.post(f"/v1/ticket-checkouts/{checkout_id}/cancel", headers=merchant.auth)
    elif how == "expired":
        expire_due(db, now=datetime.now(UTC) + timedelta(hours=1))
    else:
        for _ in range(3):  # MAX_PAYMENT_ATTEMPTS declines
            post_webhook(*sandbox_payment_webhook(checkout_id, status="declined"))
    with db.transaction() as session:
        assert session.get(Checkout, checkout_id).status == how


def paid_events(db):
    """(checkoutId, data) of each ticket_payment.paid, in write order."""
    return [
        (data["checkoutId"], data) for kind, data in events(db) if kind == "ticket_payment.paid"
    ]


def payment_id(db, provider_payment_id):
    with db.transaction() as session:
        return session.scalars(
            select(Payment.id).where(Payment.provider_payment_id == provider_payment_id)
        ).one()


@pytest.mark.parametrize("how", ["canceled", "expired", "failed"])
def test_a_late_payment_is_recorded_after_the_reservation_has_a_new_checkout(
    db, client, merchant, open_checkout, post_webhook, how
):
    leave_open(how, db, client, merchant, open_checkout, post_webhook)
    second = create(client, merchant, "second")
    assert second.status_code == 201, second.get_data(as_text=True)
    second_id = second.get_json()["checkoutId"]

    late_hook = sandbox_payment_webhook(open_checkout, payment_id="sbp_late")
    assert post_webhook(*late_hook).status_code == 200
    assert post_webhook(*late_hook).get_json() == {"received": True, "duplicate": True}

    late = checkout(db, open_checkout)
    assert (late.status, late.late) == ("paid", True)
    [(checkout_id, data)] = paid_events(db)
    assert checkout_id == open_checkout
    assert (data["paymentId"], data["late"]) == (payment_id(db, "sbp_late"), True)

    # The new checkout is untouched and can still be paid; only then is it the live one.
    assert checkout(db, second_id).status == "open"
    assert post_webhook(*sandbox_payment_webhook(second_id, payment_id="sbp_b")).status_code == 200
    paid = checkout(db, second_id)
    assert (paid.status, paid.late) == ("paid", False)
    assert [(c, d["late"]) for c, d in paid_events(db)] == [
        (open_checkout, True),
        (second_id, False),
    ]


def test_a_late_payment_after_the_new_checkout_was_paid_is_recorded(
    db, client, merchant, open_checkout, post_webhook
):
    client.post(f"/v1/ticket-checkouts/{open_checkout}/cancel", headers=merchant.auth)
    second_id = create(client, merchant, "second").get_json()["checkoutId"]
    assert post_webhook(*sandbox_payment_webhook(second_id)).status_code == 200

    assert post_webhook(*sandbox_payment_webhook(open_checkout)).status_code == 200
    late = checkout(db, open_checkout)
    assert (late.status, late.late) == ("paid", True)
    assert [(c, d["late"]) for c, d in paid_events(db)] == [
        (second_id, False),
        (open_checkout, True),
    ]


def test_a_late_paid_checkout_still_blocks_a_new_one(
    db, client, merchant, open_checkout, post_webhook
):
    """Creation is unchanged: a reservation with any paid checkout gets no new one."""
    client.post(f"/v1/ticket-checkouts/{open_checkout}/cancel", headers=merchant.auth)
    assert post_webhook(*sandbox_payment_webhook(open_checkout)).status_code == 200
    assert checkout(db, open_checkout).late is True

    refused = create(client, merchant, "after-late")
    assert refused.status_code == 409
    assert refused.get_json()["error"]["code"] == "checkout_exists"
    assert refused.get_json()["error"]["details"] == {"checkoutId": open_checkout}
