"""Provider webhooks: verified before anything is stored, applied once, in any order."""

import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from payment_service.callbacks.models import CallbackEvent
from payment_service.checkouts.expiry import expire_due
from payment_service.checkouts.models import Checkout
from payment_service.payments.models import Payment, ProviderEventRecord
from tests.factories import sandbox_payment_webhook
from tests.races import race, without_index


def count(db, model, *where):
    with db.transaction() as session:
        return session.scalar(select(func.count()).select_from(model).where(*where))


def checkout(db, checkout_id):
    with db.transaction() as session:
        return session.get(Checkout, checkout_id)


def events(db):
    with db.transaction() as session:
        return [
            (e.type, e.payload["data"])
            for e in session.scalars(select(CallbackEvent).order_by(CallbackEvent.seq))
        ]


def test_a_signed_payment_webhook_pays_the_checkout_once(
    db, open_checkout, post_webhook, client, merchant
):
    body, headers = sandbox_payment_webhook(open_checkout, payment_id="sbp_one")
    response = post_webhook(body, headers, request_id="req-psp-1")
    assert response.status_code == 200 and response.get_json() == {
        "received": True,
        "duplicate": False,
    }
    paid = checkout(db, open_checkout)
    assert paid.status == "paid" and paid.late is False and paid.paid_at is not None
    [(event_type, data)] = events(db)
    assert event_type == "ticket_payment.paid"
    assert (
        data["paymentId"].startswith("pay_")
        and data["txId"] == "sbtx_one"
        and data["provider"] == "sandbox"
    )
    assert (data["amount"], data["currency"], data["late"]) == (30000, "KRW", False)
    with db.transaction() as session:
        assert session.scalars(select(CallbackEvent.request_id)).one() == "req-psp-1"
    api = client.get(f"/v1/ticket-checkouts/{open_checkout}", headers=merchant.auth).get_json()
    assert api["status"] == "paid" and api["payment"]["paymentId"] == data["paymentId"]
    assert api["payment"]["txId"] == "sbtx_one" and api["paidAt"]


def forged(header: str) -> str:
    """The header with its last two hex digits changed (never left as they were)."""
    tail = header[-2:]
    return header[:-2] + ("00" if tail != "00" else "11")


@pytest.mark.parametrize(
    "tamper",
    [
        lambda body, headers: (
            body,
            {**headers, "Sandbox-Signature": forged(headers["Sandbox-Signature"])},
        ),
        lambda body, headers: (body.replace(b"30000", b"10"), headers),
        lambda body, headers: (
            body,
            {k: v for k, v in headers.items() if k != "Sandbox-Signature"},
        ),
        lambda body, headers: (body, {**headers, "Sandbox-Signature": "garbage"}),
    ],
    ids=["forged-signature", "tampered-body", "unsigned", "garbled-header"],
)
def test_forged_or_unsigned_webhooks_change_nothing(db, open_checkout, post_webhook, tamper):
    body, headers = tamper(*sandbox_payment_webhook(open_checkout))
    response = post_webhook(body, headers)
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_signature"
    assert count(db, ProviderEventRecord) == count(db, Payment) == count(db, CallbackEvent) == 0
    assert checkout(db, open_checkout).status == "open"


def test_a_webhook_signed_with_another_secret_is_refused(db, open_checkout, post_webhook):
    body, headers = sandbox_payment_webhook(open_checkout, secret="someone-elses-secret")
    assert post_webhook(body, headers).status_code == 400
    assert count(db, Payment) == 0


@pytest.mark.parametrize("age", [-600, 600])
def test_stale_or_future_webhooks_are_refused(db, open_checkout, post_webhook, age):
    body, headers = sandbox_payment_webhook(open_checkout, signed_at=int(time.time()) - age)
    assert post_webhook(body, headers).status_code == 400
    assert count(db, ProviderEventRecord) == 0 and checkout(db, open_checkout).status == "open"


def test_a_replayed_webhook_is_acknowledged_and_ignored(db, open_checkout, post_webhook):
    body, headers = sandbox_payment_webhook(open_checkout)
    assert post_webhook(body, headers).get_json()["duplicate"] is False
    again = post_webhook(body, headers)
    assert again.status_code == 200 and again.get_json()["duplicate"] is True
    assert count(db, Payment) == 1 and count(db, CallbackEvent) == 1


def test_unknown_provider_is_404(post_webhook, open_checkout):
    body, headers = sandbox_payment_webhook(open_checkout)
    assert post_webhook(body, headers, provider="nope").status_code == 404


def _ten_copies(app, body, headers):
    def work(_):
        return (
            app.test_client()
            .post("/v1/providers/sandbox/webhooks", data=body, headers=headers)
            .status_code
        )

    return race(10, work)


def test_ten_concurrent_copies_give_one_payment_and_one_paid_event(app, db, open_checkout):
    body, headers = sandbox_payment_webhook(open_checkout)
    assert _ten_copies(app, body, headers) == [200] * 10
    assert count(db, ProviderEventRecord) == 1
    assert count(db, Payment) == 1
    assert [t for t, _ in events(db)] == ["ticket_payment.paid"]


def test_control_without_the_event_index_the_copies_are_all_stored(app, db, open_checkout):
    """The harness really delivers the copies concurrently: without the unique index every copy
    is stored as a new provider event. The payment is still recorded once, by the checkout's
    row lock and the unique provider payment id behind it."""
    body, headers = sandbox_payment_webhook(open_checkout)
    with without_index(
        db, "provider_events", "uq_provider_events_provider_event", clear_first=["provider_events"]
    ):
        assert _ten_copies(app, body, headers) == [200] * 10
        assert count(db, ProviderEventRecord) == 10
        assert count(db, Payment) == 1
        assert [t for t, _ in events(db)] == ["ticket_payment.paid"]


def test_paid_then_declined_stays_paid(db, open_checkout, post_webhook):
    post_webhook(*sandbox_payment_webhook(open_checkout, status="succeeded"))
    post_webhook(*sandbox_payment_webhook(open_checkout, status="declined"))
    assert checkout(db, open_checkout).status == "paid"
    assert [t for t, _ in events(db)] == ["ticket_payment.paid"]


def test_three_declines_end_failed(db, open_checkout, post_webhook):
    for _ in range(3):
        assert (
            post_webhook(*sandbox_payment_webhook(open_checkout, status="declined")).status_code
            == 200
        )
    failed = checkout(db, open_checkout)
    assert (failed.status, failed.attempts) == ("failed", 3)
    assert [(t, d["attempt"], d["maxAttempts"], d["reason"]) for t, d in events(db)] == [
        ("ticket_payment.failed", n, 3, "card_declined") for n in (1, 2, 3)
    ]


def test_a_decline_reported_twice_counts_once(db, open_checkout, post_webhook):
    post_webhook(*sandbox_payment_webhook(open_checkout, status="declined", payment_id="sbp_d1"))
    post_webhook(*sandbox_payment_webhook(open_checkout, status="declined", payment_id="sbp_d1"))
    assert checkout(db, open_checkout).attempts == 1


def test_expired_then_paid_is_recorded_as_a_late_payment(db, open_checkout, post_webhook):
    expired = expire_due(db, now=datetime.now(UTC) + timedelta(hours=1))
    assert [e.checkout_id for e in expired] == [open_checkout]
    assert checkout(db, open_checkout).status == "expired"
    assert post_webhook(*sandbox_payment_webhook(open_checkout)).status_code == 200
    late = checkout(db, open_checkout)
    assert (late.status, late.late) == ("paid", True)
    assert [(t, d.get("late")) for t, d in events(db)] == [
        ("ticket_payment.expired", None),
        ("ticket_payment.paid", True),
    ]


def test_canceled_then_paid_is_recorded_as_a_late_payment(
    db, client, merchant, open_checkout, post_webhook
):
    client.post(f"/v1/ticket-checkouts/{open_checkout}/cancel", headers=merchant.auth)
    post_webhook(*sandbox_payment_webhook(open_checkout))
    assert checkout(db, open_checkout).status == "paid" and checkout(db, open_checkout).late is True


def test_expiry_needs_no_buyer_and_runs_once(db, client, merchant, open_checkout):
    later = datetime.now(UTC) + timedelta(hours=1)
    assert len(expire_due(db, now=later)) == 1
    assert expire_due(db, now=later) == []
    assert [t for t, _ in events(db)] == ["ticket_payment.expired"]
    assert (
        client.get(f"/v1/ticket-checkouts/{open_checkout}", headers=merchant.auth).get_json()[
            "status"
        ]
        == "expired"
    )


def test_the_sweep_leaves_checkouts_that_are_not_due(db, open_checkout):
    assert expire_due(db) == []
    assert checkout(db, open_checkout).status == "open"
