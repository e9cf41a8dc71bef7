"""The sweep settles the provider session of a checkout that left `open` before its deadline
(the platform's cancel, the last declined attempt), on both databases, against the real sandbox
PSP over HTTP (and a scripted stand-in, to count the calls nobody should make).

Such a session stays payable at the provider until its own deadline. A buyer who pays there
while the webhook is lost has paid all the same: the sweep finds the payment, records it as a
late one, and it ends acknowledged by the platform or refunded (hence this folder).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from payment_service.checkouts.expiry import sweep
from payment_service.checkouts.models import Checkout
from payment_service.checkouts.services import cancel_checkout
from payment_service.db import Database, utcnow
from payment_service.payments.models import Payment
from payment_service.payments.services import apply_payment
from payment_service.providers.base import PaymentStatus, ProviderPayment, SessionState
from payment_service.providers.registry import ProviderRegistry
from tests.factories import MerchantCredentials
from tests.integration.callbacks.conftest import add_checkout
from tests.integration.providers.conftest import Scripted, buyer_pays, make_provider, serving
from tests.integration.refunds.conftest import MAX_ATTEMPTS, World
from tests.integration.refunds.test_expiry_sessions import (
    LATER,
    event_types,
    open_session,
    rejected_and_refunded,
    set_session,
)


class Counted:
    """The sandbox adapter, counting the sessions it is asked to close (every settling starts
    there)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = inner.name
        self.closed: list[str] = []

    def expire_session(self, session_id: str) -> None:
        self.closed.append(session_id)
        self.inner.expire_session(session_id)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def cancel(world: World, checkout_id: str) -> None:
    """The platform's DELETE: the checkout is canceled; its session stays open at the sandbox."""
    cancel_checkout(world.db, world.merchant.merchant_id, checkout_id, request_id="req_cancel_1")


def decline_to_the_last(world: World, checkout_id: str, session_url: str) -> None:
    """The buyer is declined at the session as often as a checkout allows, each decline applied
    as its webhook would apply it: the last one makes the checkout `failed`."""
    session_id = world.checkout(checkout_id).provider_session_id
    assert session_id is not None
    for _ in range(MAX_ATTEMPTS):
        buyer_pays(session_url, outcome="declined")
        declined = world.provider.retrieve_session(session_id).last_payment
        assert declined is not None and declined.status == PaymentStatus.DECLINED
        with world.db.transaction() as tx:
            apply_payment(tx, "sandbox", declined, max_attempts=MAX_ATTEMPTS, request_id=None)
    assert world.checkout(checkout_id).status == "failed"


def test_a_canceled_checkouts_session_paid_while_its_webhook_was_lost_ends_refunded(
    world: World,
) -> None:
    checkout_id = add_checkout(world.db, world.merchant.merchant_id, world.receiver.url())
    session = open_session(world, checkout_id)  # its webhooks go to the sink: lost
    cancel(world, checkout_id)
    assert world.deliver() == ["delivered"]  # ticket_payment.canceled
    buyer_pays(session.redirect_url)  # the tab was still open; then it is closed
    at_sandbox = world.provider.retrieve_session(session.session_id).last_payment
    assert at_sandbox is not None and at_sandbox.status == PaymentStatus.SUCCEEDED

    # Long before the checkout's deadline: a canceled checkout's session is settled at once.
    assert sweep(world.db, world.registry, now=utcnow(), max_attempts=MAX_ATTEMPTS) == 1

    checkout = world.checkout(checkout_id)
    assert (checkout.status, checkout.late) == ("paid", True)
    assert checkout.provider_session_settled_at is not None
    with world.db.transaction() as tx:
        payment = tx.scalars(select(Payment).where(Payment.checkout_id == checkout_id)).one()
    assert payment.provider_payment_id == at_sandbox.payment_id
    (_, _), (paid, _) = world.events(checkout_id)
    assert paid.type == "ticket_payment.paid"
    assert (paid.payload["data"]["paymentId"], paid.payload["data"]["late"]) == (payment.id, True)
    assert sweep(world.db, world.registry, now=utcnow() + LATER) == 0  # settled once

    # The platform gave the seat away when it canceled: it rejects the payment, which goes back.
    rejected_and_refunded(world, checkout_id, at_sandbox.payment_id)
    assert event_types(world, checkout_id) == [
        "ticket_payment.canceled", "ticket_payment.paid", "ticket_payment.refunded",
    ]  # fmt: skip


def test_a_failed_checkouts_session_paid_after_the_last_decline_is_recorded_late(
    world: World,
) -> None:
    checkout_id = add_checkout(world.db, world.merchant.merchant_id, world.receiver.url())
    session = open_session(world, checkout_id)
    decline_to_the_last(world, checkout_id, session.redirect_url)
    buyer_pays(session.redirect_url)  # the sandbox's session takes a payment after a decline
    at_sandbox = world.provider.retrieve_session(session.session_id).last_payment
    assert at_sandbox is not None and at_sandbox.status == PaymentStatus.SUCCEEDED

    assert sweep(world.db, world.registry, now=utcnow(), max_attempts=MAX_ATTEMPTS) == 1

    checkout = world.checkout(checkout_id)
    assert (checkout.status, checkout.late, checkout.paid_at) == (
        "paid", True, at_sandbox.occurred_at,
    )  # fmt: skip
    assert checkout.provider_session_settled_at is not None
    *declines, (paid, _) = world.events(checkout_id)
    assert [event.type for event, _ in declines] == ["ticket_payment.failed"] * MAX_ATTEMPTS
    assert (paid.type, paid.payload["data"]["late"]) == ("ticket_payment.paid", True)


@pytest.mark.parametrize("left_open_by", ["cancel", "last_decline"])
def test_an_unpaid_session_is_closed_and_the_checkout_keeps_its_status(
    world: World, left_open_by: str
) -> None:
    checkout_id = add_checkout(world.db, world.merchant.merchant_id, world.receiver.url())
    session = open_session(world, checkout_id)
    if left_open_by == "cancel":
        cancel(world, checkout_id)
    else:
        decline_to_the_last(world, checkout_id, session.redirect_url)
    status = world.checkout(checkout_id).status
    events = event_types(world, checkout_id)
    counted = Counted(world.provider)
    registry = ProviderRegistry([counted])  # type: ignore[list-item]

    assert sweep(world.db, registry, now=utcnow(), max_attempts=MAX_ATTEMPTS) == 1

    assert counted.closed == [session.session_id]
    at_sandbox = world.provider.retrieve_session(session.session_id)
    assert at_sandbox.state is SessionState.EXPIRED  # the buyer can no longer pay there
    checkout = world.checkout(checkout_id)
    assert checkout.status == status and checkout.provider_session_settled_at is not None
    assert event_types(world, checkout_id) == events  # nothing new for the platform
    for later in (utcnow() + timedelta(seconds=1), utcnow() + LATER):
        assert sweep(world.db, registry, now=later, max_attempts=MAX_ATTEMPTS) == 0
    assert counted.closed == [session.session_id]  # never asked again


def set_settled(db: Database, checkout_id: str, status: str) -> None:
    with db.transaction() as tx:
        tx.execute(
            update(Checkout)
            .where(Checkout.id == checkout_id)
            .values(status=status, closed_at=utcnow(), provider_session_settled_at=utcnow())
        )


def test_a_settled_session_is_never_asked_about_again(
    db: Database, platform: MerchantCredentials
) -> None:
    """Canceled and failed checkouts whose sessions are settled (by an earlier round, or by the
    upgrade that added the column), and one paid through its session's webhook, are left alone
    by every later round; only the unsettled canceled one is asked about."""
    checkouts = {
        name: add_checkout(db, platform.merchant_id, "http://127.0.0.1:9/hooks")
        for name in ("canceled", "failed", "paid", "unsettled")
    }
    for name, checkout_id in checkouts.items():
        set_session(db, checkout_id, f"sbs_{name}")
    set_settled(db, checkouts["canceled"], "canceled")
    set_settled(db, checkouts["failed"], "failed")
    with db.transaction() as tx:
        tx.execute(
            update(Checkout)
            .where(Checkout.id == checkouts["unsettled"])
            .values(status="canceled", closed_at=utcnow())
        )
    paid = ProviderPayment(
        payment_id="sbp_paid", session_id="sbs_paid", reference=checkouts["paid"],
        status=PaymentStatus.SUCCEEDED, amount=30000, currency="KRW", tx_id="sbtx_1",
        decline_code=None, occurred_at=utcnow(),
    )  # fmt: skip
    with db.transaction() as tx:  # as its webhook applies it (record_provider_event)
        applied = apply_payment(tx, "sandbox", paid, max_attempts=MAX_ATTEMPTS, request_id=None)
        assert applied is not None and applied.provider_session_settled_at is not None
    scripted = Scripted()  # answers 500 to all but what is queued

    with serving(scripted) as url, make_provider(url) as adapter:
        scripted.answer(200, {"id": "sbs_unsettled", "status": "expired", "lastPayment": None})
        registry = ProviderRegistry([adapter])
        assert sweep(db, registry, now=utcnow()) == 1
        for later in (utcnow() + LATER, utcnow() + timedelta(days=2)):
            assert sweep(db, registry, now=later) == 0

    assert [path for _, path, _ in scripted.requests] == ["/api/sessions/sbs_unsettled/expire"]
