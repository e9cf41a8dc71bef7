"""handle_callback: signed callbacks, as the service sends them, into ledger changes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from flask import Flask
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from platform_client.ledger import (
    Ledger,
    PaymentRecord,
    ProcessedCallback,
    Reservation,
    ReservationStatus,
)
from platform_client.receiver import RejectCallback, mount_callback_endpoint
from shared_contracts.events import EventType
from tests.platform_client.builders import SECRET, callback_body, signed
from tests.platform_client.ledger.conftest import Clock
from tests.platform_client.ledger.helpers import (
    EVENT,
    FREE,
    FULL,
    USD,
    about,
    counts,
    delivered,
    paid,
    snapshot,
    taken,
)

ANSWERS = {"T-shirt size?": "L", "Club": "Han River Runners"}


def hold(ledger: Ledger, user: str = "u_1", tier: str = USD) -> str:
    started = ledger.start_registration(user, EVENT, tier, ANSWERS)
    assert started.reservation_id
    return started.reservation_id


def rejected(ledger: Ledger, event) -> RejectCallback:  # type: ignore[no-untyped-def]
    with pytest.raises(RejectCallback) as raised:
        ledger.handle_callback(event)
    return raised.value


def test_paid_confirms_the_registration_with_the_snapshot_answers(ledger: Ledger, engine: Engine):
    reservation_id = hold(ledger)
    event = paid(ledger, reservation_id, msg_id="evt_paid_1", paymentId="pay_9", txId="tx_9")
    ledger.handle_callback(event)

    view = ledger.reservation(reservation_id)
    assert view is not None and view.status is ReservationStatus.CONFIRMED
    [registration] = ledger.registrations_for("u_1")
    assert view.registration_id == registration.registration_id
    assert registration.answers == ANSWERS and registration.reservation_id == reservation_id
    assert (registration.tier_id, registration.event_name) == (USD, "Seoul Marathon 2027")
    with Session(engine) as session:
        record = session.scalars(select(PaymentRecord)).one()
        assert (record.checkout_id, record.payment_id, record.tx_id) == (
            view.checkout_id, "pay_9", "tx_9",
        )  # fmt: skip
        assert (record.amount, record.currency, record.provider) == (1999, "USD", "sandbox")
        assert record.paid_at == datetime(2026, 11, 22, 10, 3, 12, tzinfo=UTC)
        callback = session.get(ProcessedCallback, "evt_paid_1")
        assert callback is not None and callback.type == "ticket_payment.paid"
    assert taken(engine, USD) == 1  # the hold's seat became the registration's


def test_a_repeated_or_redelivered_payment_is_a_no_op(ledger: Ledger, engine: Engine):
    reservation_id = hold(ledger)
    event = paid(ledger, reservation_id, msg_id="evt_paid_1")
    ledger.handle_callback(event)
    after_first = snapshot(engine)
    ledger.handle_callback(event)  # the same webhook-id again
    assert snapshot(engine) == after_first
    ledger.handle_callback(paid(ledger, reservation_id, msg_id="evt_paid_2"))  # a replay
    assert counts(engine) == (1, 1) and taken(engine, USD) == 1
    assert ledger.seen_store().seen("evt_paid_2")  # noted, so the receiver skips it next time


@pytest.mark.parametrize(
    "wrong",
    [{"amount": 1000}, {"currency": "KRW"}, {"checkoutId": "chk_other"}, {"provider": "stripe"},
     {"tierId": FULL}, {"eventId": "evt_other"}],
    ids=["amount", "currency", "checkout", "provider", "tier", "event"],
)  # fmt: skip
def test_a_payment_that_does_not_match_the_hold_is_rejected_and_changes_nothing(
    ledger: Ledger, engine: Engine, wrong: dict[str, object]
):
    reservation_id = hold(ledger)
    before = snapshot(engine)
    rejection = rejected(ledger, paid(ledger, reservation_id, **wrong))
    assert (rejection.code, rejection.status) == ("payment_mismatch", 422)
    assert rejection.details == {"fields": list(wrong)}
    assert snapshot(engine) == before


def test_a_payment_for_an_unknown_reservation_is_rejected(ledger: Ledger, engine: Engine):
    reservation_id = hold(ledger)
    event = paid(ledger, reservation_id, reservationId="res_unknown")
    before = snapshot(engine)
    rejection = rejected(ledger, event)
    assert (rejection.code, rejection.status) == ("unknown_reservation", 422)
    assert snapshot(engine) == before


def test_a_late_payment_takes_a_free_seat_again(ledger: Ledger, engine: Engine):
    reservation_id = hold(ledger, tier=FULL)
    ledger.handle_callback(delivered(EventType.EXPIRED, **about(ledger, reservation_id)))
    assert taken(engine, FULL) == 0
    ledger.handle_callback(paid(ledger, reservation_id, late=True))
    view = ledger.reservation(reservation_id)
    assert view is not None and view.status is ReservationStatus.CONFIRMED
    assert view.registration_id and taken(engine, FULL) == 1


def test_a_late_payment_without_a_free_seat_is_rejected_for_a_refund(
    ledger: Ledger, engine: Engine
):
    reservation_id = hold(ledger, tier=FULL)
    ledger.handle_callback(delivered(EventType.CANCELED, **about(ledger, reservation_id)))
    hold(ledger, "u_2", FULL)
    hold(ledger, "u_3", FULL)  # both seats held by others now
    before = snapshot(engine)
    rejection = rejected(ledger, paid(ledger, reservation_id, late=True))
    assert (rejection.code, rejection.status) == ("reservation_expired", 409)
    assert snapshot(engine) == before and ledger.registrations_for("u_1") == []


def test_a_payment_from_a_buyer_registered_meanwhile_is_rejected(ledger: Ledger, engine: Engine):
    reservation_id = hold(ledger, tier=FULL)
    ledger.handle_callback(delivered(EventType.EXPIRED, **about(ledger, reservation_id)))
    ledger.start_registration("u_1", EVENT, FREE, {})  # registered for free in between
    before = snapshot(engine)
    rejection = rejected(ledger, paid(ledger, reservation_id, late=True))
    assert (rejection.code, rejection.status) == ("already_registered", 409)
    assert snapshot(engine) == before


@pytest.mark.parametrize(
    ("type", "status"),
    [(EventType.EXPIRED, ReservationStatus.EXPIRED),
     (EventType.CANCELED, ReservationStatus.CANCELED)],
)  # fmt: skip
def test_expired_and_canceled_release_the_hold_once(
    ledger: Ledger, engine: Engine, type: EventType, status: ReservationStatus
):
    reservation_id = hold(ledger)
    event = delivered(type, **about(ledger, reservation_id))
    ledger.handle_callback(event)
    view = ledger.reservation(reservation_id)
    assert view is not None and view.status is status and taken(engine, USD) == 0
    ledger.handle_callback(event)
    ledger.handle_callback(delivered(type, **about(ledger, reservation_id)))  # another id
    assert taken(engine, USD) == 0  # never returned twice


def test_a_release_after_payment_or_for_another_checkout_changes_nothing(
    ledger: Ledger, engine: Engine
):
    reservation_id = hold(ledger)
    other = delivered(EventType.EXPIRED, **{**about(ledger, reservation_id), "checkoutId": "x"})
    ledger.handle_callback(other)
    assert taken(engine, USD) == 1
    ledger.handle_callback(paid(ledger, reservation_id))
    ledger.handle_callback(delivered(EventType.EXPIRED, **about(ledger, reservation_id)))
    view = ledger.reservation(reservation_id)
    assert view is not None and view.status is ReservationStatus.CONFIRMED
    assert taken(engine, USD) == 1


def test_only_the_last_failed_attempt_releases_the_hold(ledger: Ledger, engine: Engine):
    reservation_id = hold(ledger)
    data = about(ledger, reservation_id)
    for attempt in (1, 2):
        ledger.handle_callback(delivered(EventType.FAILED, **data, attempt=attempt))
        assert taken(engine, USD) == 1
    ledger.handle_callback(delivered(EventType.FAILED, **data, attempt=3, maxAttempts=3))
    view = ledger.reservation(reservation_id)
    assert view is not None and view.status is ReservationStatus.RELEASED
    assert taken(engine, USD) == 0


def test_a_refund_changes_nothing_but_is_noted(ledger: Ledger, engine: Engine):
    reservation_id = hold(ledger)
    ledger.handle_callback(paid(ledger, reservation_id))
    before = snapshot(engine)
    ledger.handle_callback(delivered(EventType.REFUNDED, "evt_rf", **about(ledger, reservation_id)))
    after = snapshot(engine)
    assert after["callbacks"] == before["callbacks"] + 1  # type: ignore[operator]
    assert {**after, "callbacks": 0} == {**before, "callbacks": 0}


def test_callbacks_for_unknown_reservations_are_noted_not_failed(ledger: Ledger):
    data = {"reservationId": "res_gone", "checkoutId": "chk_gone"}
    for type in (EventType.EXPIRED, EventType.CANCELED, EventType.FAILED, EventType.REFUNDED):
        ledger.handle_callback(delivered(type, f"evt_{type}", **data))
        assert ledger.seen_store().seen(f"evt_{type}")


def test_the_seen_store_is_the_processed_callbacks_table(ledger: Ledger):
    store = ledger.seen_store()
    assert not store.seen("evt_x")
    store.remember("evt_x")
    store.remember("evt_x")  # already there: not an error
    assert store.seen("evt_x")


def test_mounted_on_a_flask_app_the_ledger_answers_the_service(ledger: Ledger, engine: Engine):
    platform = Flask("platform")
    mount_callback_endpoint(
        platform, "/hooks/ticket-payments", secrets=[SECRET], handler=ledger.handle_callback,
        seen=ledger.seen_store(),
    )  # fmt: skip
    client = platform.test_client()

    def post(msg_id: str, **data: object) -> tuple[int, object]:
        body = callback_body(EventType.PAID, **{**about(ledger, reservation_id), **data})
        response = client.post(
            "/hooks/ticket-payments", data=body, headers=signed(body, msg_id=msg_id)
        )
        return response.status_code, (response.get_json(silent=True) or {}).get("error", {}).get(
            "code"
        )

    reservation_id = hold(ledger)
    assert post("evt_bad", amount=1) == (422, "payment_mismatch")
    assert post("evt_bad", amount=1) == (422, "payment_mismatch")  # a rejection is not "seen"
    assert post("evt_ok", provider="sandbox") == (204, None)
    assert post("evt_ok", provider="sandbox") == (200, None)  # seen: the handler is skipped
    assert post("evt_again", provider="sandbox") == (204, None)  # same payment, new id: no-op
    assert counts(engine) == (1, 1)


def test_a_hold_is_confirmed_even_if_the_callback_beats_the_stored_checkout_id(
    ledger: Ledger, engine: Engine, clock: Clock
):
    reservation_id = hold(ledger)
    data = about(ledger, reservation_id)
    with Session(engine) as session, session.begin():
        session.execute(update(Reservation).values(checkout_id=None, checkout_url=None))
    ledger.handle_callback(delivered(EventType.PAID, **{**data, "provider": "sandbox"}))
    view = ledger.reservation(reservation_id)
    assert view is not None and view.status is ReservationStatus.CONFIRMED
    assert view.checkout_id == data["checkoutId"]
    clock.advance(hours=1)
    assert ledger.sweep_expired_holds() == 0  # a confirmed hold is not swept
    assert taken(engine, USD) == 1
