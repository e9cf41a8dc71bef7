"""start_registration against the real payment service over HTTP (SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, select, text, update
from sqlalchemy.orm import Session

from payment_service.checkouts.models import Checkout
from payment_service.db import Database
from payment_service.idempotency.services import lock_id
from platform_client.client import PaymentServiceClient
from platform_client.errors import PaymentServiceUnavailable, UrlNotAllowed
from platform_client.ledger import (
    AlreadyRegistered,
    CheckoutUnavailable,
    Ledger,
    LedgerConfig,
    Reservation,
    ReservationStatus,
    SaleClosed,
    SeatRequest,
    SoldOut,
    Tier,
    UnknownTier,
    hold_seat,
)
from shared_contracts.checkouts import CheckoutStatus
from tests.e2e.processes import free_port
from tests.factories import PLATFORM_ORIGIN, MerchantCredentials
from tests.platform_client.ledger.conftest import CONFIG, Clock
from tests.platform_client.ledger.helpers import EVENT, FREE, FULL, USD, add_tier, seed, taken

ANSWERS = {"T-shirt size?": "M"}


def test_a_free_tier_registers_at_once_and_counts_the_seat(ledger: Ledger, engine: Engine):
    started = ledger.start_registration("u_1", EVENT, FREE, {"note": "hi"})
    assert started.registration_id and started.reservation_id is None
    assert started.checkout_url is None and started.checkout_id is None
    assert taken(engine, FREE) == 1
    [registration] = ledger.registrations_for("u_1")
    assert (registration.registration_id, registration.tier_id) == (started.registration_id, FREE)
    assert registration.answers == {"note": "hi"} and registration.reservation_id is None
    with pytest.raises(AlreadyRegistered):
        ledger.start_registration("u_1", EVENT, FREE, {})
    with pytest.raises(AlreadyRegistered):  # any tier of the event
        ledger.start_registration("u_1", EVENT, USD, {})
    assert taken(engine, FREE) == 1


def test_a_paid_tier_holds_a_seat_and_creates_a_checkout_that_expires_with_the_hold(
    ledger: Ledger, engine: Engine, payment_client: PaymentServiceClient, clock: Clock
):
    before = clock()
    started = ledger.start_registration("u_1", EVENT, USD, ANSWERS, email="kim@example.com")
    assert started.reservation_id and started.registration_id is None
    assert started.checkout_id and started.checkout_url
    view = ledger.reservation(started.reservation_id)
    assert view is not None and view.status is ReservationStatus.PENDING_PAYMENT
    assert (view.amount, view.currency, view.registration_id) == (1999, "USD", None)
    assert (view.checkout_id, view.checkout_url) == (started.checkout_id, started.checkout_url)
    assert before + timedelta(minutes=10) - timedelta(seconds=1) <= view.expires_at
    assert view.expires_at <= clock() + timedelta(minutes=10)
    assert taken(engine, USD) == 1 and ledger.registrations_for("u_1") == []

    checkout = payment_client.get_checkout(started.checkout_id)
    assert checkout.status is CheckoutStatus.OPEN
    assert checkout.expires_at == view.expires_at  # never later than the hold
    assert (checkout.reservation_id, checkout.event_id, checkout.tier_id) == (
        started.reservation_id, EVENT, USD,
    )  # fmt: skip
    assert (checkout.amount, checkout.currency, checkout.provider) == (1999, "USD", "sandbox")
    assert checkout.order_name == "Seoul Marathon 2027 - Full course (abroad)"


def test_sold_out_sale_window_and_unknown_tier(ledger: Ledger, engine: Engine, clock: Clock):
    ledger.start_registration("u_1", EVENT, FULL, {})
    ledger.start_registration("u_2", EVENT, FULL, {})
    with pytest.raises(SoldOut) as raised:
        ledger.start_registration("u_3", EVENT, FULL, {})
    assert raised.value.code == "sold_out" and taken(engine, FULL) == 2

    now = clock()
    add_tier(ledger, "tier_early", 5, valid_until=now - timedelta(seconds=1))
    add_tier(ledger, "tier_later", 5, valid_from=now + timedelta(hours=1))
    for tier_id in ("tier_early", "tier_later"):
        with pytest.raises(SaleClosed):
            ledger.start_registration("u_3", EVENT, tier_id, {})
        assert taken(engine, tier_id) == 0
    with pytest.raises(UnknownTier):
        ledger.start_registration("u_3", EVENT, "tier_nope", {})
    with pytest.raises(UnknownTier):  # a tier of another event
        ledger.start_registration("u_3", "evt_other", FULL, {})
    assert ledger.reservation("res_nope") is None


def test_a_double_submit_returns_the_same_checkout_without_a_second_hold(
    ledger: Ledger, engine: Engine, payment_client: PaymentServiceClient
):
    first = ledger.start_registration("u_1", EVENT, USD, ANSWERS)
    again = ledger.start_registration("u_1", EVENT, USD, ANSWERS)
    other_tier = ledger.start_registration("u_1", EVENT, FULL, {})  # one hold per user and event
    assert again == first and other_tier == first
    assert other_tier.tier_id == USD  # the held tier, so a page can say it is not the one asked
    assert taken(engine, USD) == 1 and taken(engine, FULL) == 0
    assert [c.checkout_id for c in payment_client.find_checkouts(first.reservation_id)] == [
        first.checkout_id
    ]


def test_a_double_submit_while_the_first_is_still_creating_replays_the_same_checkout(
    ledger: Ledger, engine: Engine, payment_client: PaymentServiceClient
):
    """The first submit created the checkout but had not stored its URL yet: the repeat sends
    the same key and the identical body (else the service answers idempotency_key_reused)."""
    first = ledger.start_registration("u_1", EVENT, USD, ANSWERS, email="kim@example.com")
    with Session(engine) as session, session.begin():
        session.execute(
            update(Reservation).values(checkout_id=None, checkout_url=None)
        )  # as if the first submit were still waiting for the service's answer
    again = ledger.start_registration("u_1", EVENT, USD, ANSWERS, email="kim@example.com")
    assert again == first
    assert len(payment_client.find_checkouts(first.reservation_id)) == 1
    assert taken(engine, USD) == 1


def test_a_hold_whose_first_submit_never_reached_the_service_gets_its_checkout_on_repeat(
    ledger: Ledger, engine: Engine, clock: Clock
):
    with Session(engine) as session, session.begin():
        seat = hold_seat(
            session, SeatRequest(user_id="u_1", event_id=EVENT, tier_id=USD),
            provider="sandbox", now=clock(), ttl=timedelta(minutes=10),
        )  # fmt: skip
    assert seat.hold is not None and seat.hold.checkout_url is None
    started = ledger.start_registration("u_1", EVENT, USD, {})
    assert started.reservation_id == seat.hold.reservation_id and started.checkout_url
    view = ledger.reservation(seat.hold.reservation_id)
    assert view is not None and view.checkout_url == started.checkout_url
    assert taken(engine, USD) == 1


def test_an_expired_hold_not_yet_swept_gives_way_to_a_new_one(ledger: Ledger, engine: Engine):
    first = ledger.start_registration("u_1", EVENT, FULL, {})
    # Its deadline passed (moved rather than the clock: the service checks a new checkout's
    # expiresAt against its own real clock).
    with Session(engine) as session, session.begin():
        session.execute(
            update(Reservation).values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    second = ledger.start_registration("u_1", EVENT, FULL, {})
    assert second.reservation_id != first.reservation_id
    old = ledger.reservation(first.reservation_id)
    assert old is not None and old.status is ReservationStatus.EXPIRED
    assert taken(engine, FULL) == 1  # the old seat went back, the new one was taken


def test_a_refused_checkout_releases_the_hold(ledger: Ledger, engine: Engine, payment_client):
    refusing = Ledger(
        engine, payment_client,
        LedgerConfig(callback_url="https://evil.example/hooks", success_url=CONFIG.success_url,
                     cancel_url=CONFIG.cancel_url, provider=CONFIG.provider),
    )  # fmt: skip
    with pytest.raises(CheckoutUnavailable) as raised:
        refusing.start_registration("u_1", EVENT, FULL, {})
    assert isinstance(raised.value.error, UrlNotAllowed)
    assert raised.value.code == "checkout_unavailable"
    assert taken(engine, FULL) == 0
    with Session(engine) as session:
        [status] = session.query(Reservation.status).all()
    assert status == (ReservationStatus.RELEASED,)
    # The seat is free again: the next buyer (and this one, configured properly) get it.
    assert ledger.start_registration("u_1", EVENT, FULL, {}).checkout_url
    assert taken(engine, FULL) == 1


def test_an_unreachable_service_releases_the_hold(engine: Engine, clock: Clock):
    with PaymentServiceClient(f"http://127.0.0.1:{free_port()}", "pk_any", retries=0) as down:
        ledger = Ledger(engine, down, CONFIG, clock=clock)
        seed(ledger)
        with pytest.raises(CheckoutUnavailable) as raised:
            ledger.start_registration("u_1", EVENT, FULL, {})
    assert isinstance(raised.value.error, PaymentServiceUnavailable)
    assert taken(engine, FULL) == 0
    assert {t.tier_id: t.seats_left for t in ledger.tiers(EVENT)}[FULL] == 2


def test_the_service_got_the_reservation_urls_and_the_buyer(ledger: Ledger, db: Database):
    started = ledger.start_registration("u_1", EVENT, FULL, {}, email="kim@example.com")
    with db.transaction() as session:
        checkout = session.get(Checkout, started.checkout_id)
        assert checkout is not None
        reservation_id = started.reservation_id
        assert checkout.success_url == (
            f"{PLATFORM_ORIGIN}/registrations/{reservation_id}?payment=success"
        )
        assert checkout.cancel_url == (
            f"{PLATFORM_ORIGIN}/registrations/{reservation_id}?payment=cancel"
        )
        assert checkout.callback_url == CONFIG.callback_url
        assert checkout.customer == {"platform_user_id": "u_1", "email": "kim@example.com"}


def test_a_repeat_waits_while_the_first_create_is_still_running(
    ledger: Ledger, engine: Engine, db: Database, merchant: MerchantCredentials, clock: Clock
):
    """The first submit's create call holds the idempotency key at the service: PostgreSQL
    answers the repeat 409 idempotency_key_in_use (the ledger retries briefly), SQLite makes
    it wait for the writer lock. Either way the repeat gets the checkout, not an error."""
    with Session(engine) as session, session.begin():
        seat = hold_seat(
            session, SeatRequest(user_id="u_1", event_id=EVENT, tier_id=USD),
            provider="sandbox", now=clock(), ttl=timedelta(minutes=10),
        )  # fmt: skip
    assert seat.hold is not None
    key_taken, busy = threading.Event(), 0.5

    def first_create_running() -> None:
        with db.transaction() as session:  # SQLite: BEGIN IMMEDIATE holds the writer lock
            if db.is_postgresql:
                key = lock_id(merchant.merchant_id, f"reservation:{seat.hold.reservation_id}")
                session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
            key_taken.set()
            time.sleep(busy)

    holder = threading.Thread(target=first_create_running)
    holder.start()
    assert key_taken.wait(10)
    started_at = time.monotonic()
    started = ledger.start_registration("u_1", EVENT, USD, {})
    holder.join()
    assert time.monotonic() - started_at >= busy - 0.1
    assert started.reservation_id == seat.hold.reservation_id and started.checkout_url
    assert taken(engine, USD) == 1


def test_the_order_name_is_event_and_tier_cut_to_200_characters_or_the_one_given(
    ledger: Ledger, engine: Engine
):
    """The same on both paths: PostgreSQL's one-statement hold builds it in SQL."""
    ledger.add_event("evt_long", "Ä" * 150)
    ledger.add_event("evt_unnamed", "")
    for event_id in ("evt_long", "evt_unnamed"):
        ledger.add_tier(
            Tier(id=f"tier_{event_id}", event_id=event_id, name="Ü" * 100, price=1000,
                 currency="KRW", capacity=5)
        )  # fmt: skip
    long = ledger.start_registration("u_1", "evt_long", "tier_evt_long", {})
    unnamed = ledger.start_registration("u_1", "evt_unnamed", "tier_evt_unnamed", {})
    given = ledger.start_registration("u_2", "evt_long", "tier_evt_long", {}, order_name="Mine")
    empty = ledger.start_registration("u_3", "evt_unnamed", "tier_evt_unnamed", {}, order_name="")
    with Session(engine) as session:
        names = {
            r.id: r.order_name
            for r in session.scalars(select(Reservation).where(Reservation.user_id.like("u_%")))
        }
    assert names[long.reservation_id] == ("Ä" * 150 + " - " + "Ü" * 100)[:200]
    assert names[unnamed.reservation_id] == "Ü" * 100
    assert names[given.reservation_id] == "Mine"
    assert names[empty.reservation_id] == "Ü" * 100  # an empty name is no name
