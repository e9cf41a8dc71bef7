"""The expiry sweep and the provider sessions of overdue checkouts, on both databases, against
the real sandbox PSP over HTTP (and a scripted stand-in for answers the sandbox never gives).

A buyer who paid while the provider's webhook was lost, and who closed the tab instead of
coming back, has paid all the same: the sweep finds the payment when the provider refuses to
close the session, and it ends acknowledged by the platform or refunded (hence this folder).
A provider that cannot answer leaves the checkout for a later round, and is called once a round.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy import select, update
from structlog.testing import capture_logs

from payment_service.checkouts.expiry import sweep
from payment_service.checkouts.models import Checkout
from payment_service.db import Database, utcnow
from payment_service.payments.models import Payment
from payment_service.providers.base import ProviderSession, SessionRequest, SessionState
from payment_service.providers.registry import ProviderRegistry
from tests.factories import MerchantCredentials
from tests.integration.callbacks.conftest import add_checkout
from tests.integration.providers.conftest import Scripted, buyer_pays, make_provider, serving
from tests.integration.refunds.conftest import REJECTION, Reply, World, configure

LATER = timedelta(hours=1)  # past the deadline of every checkout here (add_checkout: 30 min)


def open_session(world: World, checkout_id: str) -> ProviderSession:
    """What the pay button does (checkouts/payflow.py start_payment): a sandbox session with the
    checkout's deadline, stored on the checkout. Its webhooks go to the sink, so the payment
    service never hears of them: a lost webhook."""
    checkout = world.checkout(checkout_id)
    created: ProviderSession = world.provider.create_session(
        SessionRequest(
            checkout_id=checkout_id, amount=checkout.amount, currency=checkout.currency,
            description=checkout.order_name, return_url=f"https://pay.test/return/{checkout_id}",
            cancel_url=f"https://pay.test/checkout/{checkout_id}", webhook_url=world.sink_url,
            expires_at=checkout.expires_at, idempotency_key=f"session:{checkout_id}",
        )
    )  # fmt: skip
    set_session(world.db, checkout_id, created.session_id, created.redirect_url)
    return created


def set_session(db: Database, checkout_id: str, session_id: str, url: str = "") -> None:
    with db.transaction() as tx:
        tx.execute(
            update(Checkout)
            .where(Checkout.id == checkout_id)
            .values(provider_session_id=session_id, provider_session_url=url or None)
        )


def event_types(world: World, checkout_id: str) -> list[str]:
    return [event.type for event, _ in world.events(checkout_id)]


def rejected_and_refunded(world: World, checkout_id: str, provider_payment_id: str) -> None:
    """The platform rejects the checkout's paid callback; the payment goes back in full."""
    world.receiver.script(Reply(409, REJECTION))
    assert world.deliver() == ["rejected"]
    assert world.refunds() == 1
    assert world.checkout(checkout_id).status == "refunded"
    assert world.sandbox_payment(provider_payment_id)["amountRefunded"] == 30000


def test_a_session_paid_while_its_webhook_was_lost_is_recorded_at_expiry(world: World) -> None:
    checkout_id = add_checkout(world.db, world.merchant.merchant_id, world.receiver.url())
    session = open_session(world, checkout_id)
    buyer_pays(session.redirect_url)  # then closes the tab: no return to our page either
    at_sandbox = world.provider.retrieve_session(session.session_id).last_payment
    assert at_sandbox is not None

    context = structlog.contextvars.get_contextvars()
    with capture_logs() as logs:
        assert sweep(world.db, world.registry, now=utcnow() + LATER) == 1
    # The payment's log lines named the checkout; the worker's next lines must not.
    assert structlog.contextvars.get_contextvars() == context

    checkout = world.checkout(checkout_id)
    # Paid before its deadline: paid in time, not late, and never reported expired.
    assert (checkout.status, checkout.late, checkout.paid_at) == (
        "paid", False, at_sandbox.occurred_at,
    )  # fmt: skip
    with world.db.transaction() as tx:
        payment = tx.scalars(select(Payment).where(Payment.checkout_id == checkout_id)).one()
    assert (payment.provider_payment_id, payment.status, payment.amount) == (
        at_sandbox.payment_id, "succeeded", 30000,
    )  # fmt: skip
    [(paid, _)] = world.events(checkout_id)
    assert paid.type == "ticket_payment.paid" and paid.payload["data"]["paymentId"] == payment.id
    [found] = [line for line in logs if line["event"] == "checkout.payment_found_at_expiry"]
    assert (found["log_level"], found["providerPaymentId"]) == ("warning", at_sandbox.payment_id)
    assert paid.request_id == found["requestId"]
    assert sweep(world.db, world.registry, now=utcnow() + LATER) == 0  # settled once

    # From here on, the path every paid checkout takes: the platform has no seat, so a refund.
    rejected_and_refunded(world, checkout_id, at_sandbox.payment_id)
    assert event_types(world, checkout_id) == ["ticket_payment.paid", "ticket_payment.refunded"]


def test_an_unpaid_session_is_closed_then_its_checkout_expires(world: World) -> None:
    checkout_id = add_checkout(world.db, world.merchant.merchant_id, world.receiver.url())
    session = open_session(world, checkout_id)
    without_session = add_checkout(world.db, world.merchant.merchant_id, world.receiver.url())

    assert sweep(world.db, world.registry, now=utcnow() + LATER) == 2

    assert world.provider.retrieve_session(session.session_id).state is SessionState.EXPIRED
    for expired in (checkout_id, without_session):
        assert world.checkout(expired).status == "expired"
        assert event_types(world, expired) == ["ticket_payment.expired"]
    assert sweep(world.db, world.registry, now=utcnow() + LATER) == 0


def test_while_the_provider_is_down_the_checkout_waits_for_a_later_round(world: World) -> None:
    checkout_id = add_checkout(world.db, world.merchant.merchant_id, world.receiver.url())
    buyer_pays(open_session(world, checkout_id).redirect_url)
    configure(world.sandbox_url, down=True)
    later = utcnow() + LATER

    with capture_logs() as logs:
        assert sweep(world.db, world.registry, now=later) == 0
    checkout = world.checkout(checkout_id)
    assert checkout.status == "open" and checkout.effective_status(later) == "expired"
    assert event_types(world, checkout_id) == []
    [not_closed] = [
        line for line in logs if line["event"] == "checkout.provider_session_not_closed"
    ]
    assert not_closed["log_level"] == "warning" and "503" in not_closed["error"]

    configure(world.sandbox_url, down=False)
    assert sweep(world.db, world.registry, now=later + timedelta(seconds=1)) == 1
    assert world.checkout(checkout_id).status == "paid"
    assert event_types(world, checkout_id) == ["ticket_payment.paid"]


def session_answer(session_id: str, checkout_id: str) -> dict[str, Any]:
    """The sandbox's JSON for a complete session whose payment succeeded."""
    payment = {
        "id": "sbp_" + secrets.token_hex(12), "sessionId": session_id, "reference": checkout_id,
        "status": "succeeded", "amount": 30000, "currency": "KRW", "txId": "sbtx_1",
        "declineCode": None, "createdAt": utcnow().isoformat(),
    }  # fmt: skip
    return {"id": session_id, "status": "complete", "lastPayment": payment}


def test_a_refused_close_and_then_no_answer_is_asked_again_next_round(
    db: Database, platform: MerchantCredentials
) -> None:
    checkout_id = add_checkout(db, platform.merchant_id, "http://127.0.0.1:9/hooks")
    set_session(db, checkout_id, "sbs_paid")
    refusal = {"error": {"type": "invalid_state_error", "message": "Session sbs_paid is complete"}}
    scripted = Scripted()
    scripted.answer(409, refusal)
    scripted.answer(503, {"error": {"type": "api_error", "message": "busy"}})
    scripted.answer(409, refusal)
    scripted.answer(200, session_answer("sbs_paid", checkout_id))
    later = utcnow() + LATER

    with serving(scripted) as url, make_provider(url) as adapter:
        registry = ProviderRegistry([adapter])
        assert sweep(db, registry, now=later) == 0  # refused, then the session is not told
        with db.transaction() as tx:
            assert (
                tx.scalars(select(Checkout.status).where(Checkout.id == checkout_id)).one()
                == "open"
            )
        assert sweep(db, registry, now=later) == 1

    assert [(method, path) for method, path, _ in scripted.requests] == [
        ("POST", "/api/sessions/sbs_paid/expire"), ("GET", "/api/sessions/sbs_paid"),
    ] * 2  # fmt: skip
    with db.transaction() as tx:
        checkout = tx.get(Checkout, checkout_id)
        assert checkout is not None and (checkout.status, checkout.late) == ("paid", False)


def test_one_round_calls_an_unavailable_provider_once_and_forgets_no_session(
    db: Database, platform: MerchantCredentials
) -> None:
    checkouts = [add_checkout(db, platform.merchant_id, "http://127.0.0.1:9/hooks") for _ in "1234"]
    for number, checkout_id in enumerate(checkouts):
        set_session(db, checkout_id, f"sbs_{number}")
    scripted = Scripted()  # answers 500 to all but what is queued
    later = utcnow() + LATER

    with serving(scripted) as url, make_provider(url) as adapter:
        registry = ProviderRegistry([adapter])
        with capture_logs() as logs:
            assert sweep(db, registry, now=later) == 0
        assert len(scripted.requests) == 1  # not one per session
        assert [line["event"] for line in logs] == ["checkout.provider_session_not_closed"]
        # The next round starts with another session: one the provider cannot answer about
        # does not hold up the rest.
        assert sweep(db, registry, now=later + timedelta(seconds=1)) == 0

        for _ in checkouts:
            scripted.answer(200, {"id": "sbs_x", "status": "expired", "lastPayment": None})
        assert sweep(db, registry, now=later + timedelta(seconds=2)) == len(checkouts)
    asked = [path.split("/")[3] for _, path, _ in scripted.requests]
    assert asked == ["sbs_0", "sbs_1", "sbs_2", "sbs_3", "sbs_0", "sbs_1"]  # none forgotten
    with db.transaction() as tx:
        statuses = tx.scalars(select(Checkout.status).where(Checkout.id.in_(checkouts))).all()
    assert statuses == ["expired"] * len(checkouts)


def checkout_status(db: Database, checkout_id: str) -> str:
    with db.transaction() as tx:
        return tx.scalars(select(Checkout.status).where(Checkout.id == checkout_id)).one()


def test_a_provider_refusing_our_credentials_never_lets_a_paid_session_expire(
    db: Database, platform: MerchantCredentials
) -> None:
    """A 401 (a wrong or rotated API key) says nothing about the session: the checkout stays
    open, the provider is not called again that round, and the checkout is asked about again
    after a pause, when the payment is found. Only a 404 lets it expire unsettled."""
    paid_id, other_id = (
        add_checkout(db, platform.merchant_id, "http://127.0.0.1:9/hooks") for _ in "12"
    )
    set_session(db, paid_id, "sbs_paid")
    set_session(db, other_id, "sbs_other")
    denied = {"error": {"type": "authentication_error", "message": "invalid API key"}}
    refusal = {"error": {"type": "invalid_state_error", "message": "Session sbs_paid is complete"}}
    scripted = Scripted()
    scripted.answer(401, denied)  # the close ...
    scripted.answer(401, denied)  # ... and the look-up
    later = utcnow() + LATER

    with serving(scripted) as url, make_provider(url) as adapter:
        registry = ProviderRegistry([adapter])
        with capture_logs() as logs:
            assert sweep(db, registry, now=later) == 0
        assert len(scripted.requests) == 2  # one session asked about; the other waits
        assert [(line["event"], line["log_level"]) for line in logs] == [
            ("checkout.provider_session_not_closed", "error")
        ]
        assert {checkout_status(db, paid_id), checkout_status(db, other_id)} == {"open"}

        asked_first = scripted.requests[0][1].split("/")[3]
        scripted.answer(200, {"id": "sbs_x", "status": "expired", "lastPayment": None})
        assert sweep(db, registry, now=later + timedelta(seconds=1)) == 1  # the other one
        assert len(scripted.requests) == 3  # the refused one is not asked again so soon

        refused_id = paid_id if asked_first == "sbs_paid" else other_id
        scripted.answer(409, refusal)
        scripted.answer(200, session_answer(asked_first, refused_id))
        assert sweep(db, registry, now=later + timedelta(minutes=6)) == 1
    assert checkout_status(db, refused_id) == "paid"


def test_a_session_the_provider_does_not_know_lets_the_checkout_expire(
    db: Database, platform: MerchantCredentials
) -> None:
    checkout_id = add_checkout(db, platform.merchant_id, "http://127.0.0.1:9/hooks")
    set_session(db, checkout_id, "sbs_gone")
    scripted = Scripted()
    scripted.answer(404, {"error": {"type": "invalid_request_error", "message": "no such session"}})
    scripted.answer(404, {"error": {"type": "invalid_request_error", "message": "no such session"}})

    with serving(scripted) as url, make_provider(url) as adapter, capture_logs() as logs:
        assert sweep(db, ProviderRegistry([adapter]), now=utcnow() + LATER) == 1
    assert "checkout.provider_session_unknown" in [line["event"] for line in logs]
    assert checkout_status(db, checkout_id) == "expired"
