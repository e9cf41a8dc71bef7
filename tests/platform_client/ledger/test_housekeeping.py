"""The sweeper, tier deletion and the views a platform's pages read (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine

from platform_client.ledger import (
    Ledger,
    ReservationStatus,
    Tier,
    TierHasLiveHolds,
    TierHasRegistrations,
    UnknownTier,
)
from shared_contracts.events import EventType
from tests.platform_client.ledger.conftest import Clock
from tests.platform_client.ledger.helpers import (
    EVENT,
    FREE,
    FULL,
    USD,
    about,
    add_tier,
    delivered,
    paid,
    taken,
)


def test_the_sweeper_expires_overdue_holds_and_returns_their_seats(
    ledger: Ledger, engine: Engine, clock: Clock
):
    first = ledger.start_registration("u_1", EVENT, FULL, {}).reservation_id
    clock.advance(minutes=5)
    assert ledger.sweep_expired_holds() == 0
    second = ledger.start_registration("u_2", EVENT, FULL, {}).reservation_id
    paid_one = ledger.start_registration("u_3", EVENT, USD, {}).reservation_id
    assert first and second and paid_one
    ledger.handle_callback(paid(ledger, paid_one))
    assert taken(engine, FULL) == 2

    clock.advance(minutes=5)  # the first hold's 10 minutes are over, not the second's
    assert ledger.sweep_expired_holds() == 1
    statuses = {r: ledger.reservation(r).status for r in (first, second, paid_one)}  # type: ignore[union-attr]
    assert statuses == {
        first: ReservationStatus.EXPIRED,
        second: ReservationStatus.PENDING_PAYMENT,
        paid_one: ReservationStatus.CONFIRMED,
    }
    assert taken(engine, FULL) == 1 and taken(engine, USD) == 1
    assert ledger.sweep_expired_holds() == 0  # nothing twice

    # The service's own expiry callback arriving after the sweep changes nothing more.
    ledger.handle_callback(delivered(EventType.EXPIRED, **about(ledger, first)))
    assert taken(engine, FULL) == 1
    clock.advance(minutes=6)
    assert ledger.sweep_expired_holds() == 1 and taken(engine, FULL) == 0


def test_a_tier_with_a_live_hold_cannot_be_deleted(ledger: Ledger, clock: Clock):
    reservation_id = ledger.start_registration("u_1", EVENT, FULL, {}).reservation_id
    assert reservation_id
    with pytest.raises(TierHasLiveHolds) as raised:
        ledger.delete_tier(FULL)
    assert raised.value.code == "tier_has_live_holds"
    assert FULL in {t.tier_id for t in ledger.tiers(EVENT)}

    clock.advance(minutes=11)
    ledger.sweep_expired_holds()
    ledger.delete_tier(FULL)  # only a released hold is left: it goes with the tier
    assert FULL not in {t.tier_id for t in ledger.tiers(EVENT)}
    assert ledger.reservation(reservation_id) is None
    with pytest.raises(UnknownTier):
        ledger.delete_tier(FULL)


def test_a_tier_with_registrations_cannot_be_deleted(ledger: Ledger):
    ledger.start_registration("u_1", EVENT, FREE, {})
    with pytest.raises(TierHasRegistrations):
        ledger.delete_tier(FREE)
    add_tier(ledger, "tier_unused", 10)
    ledger.delete_tier("tier_unused")
    assert "tier_unused" not in {t.tier_id for t in ledger.tiers(EVENT)}


def test_tier_views_count_seats_left_and_the_sale_window(ledger: Ledger, clock: Clock):
    ledger.start_registration("u_1", EVENT, FULL, {})
    ledger.start_registration("u_2", EVENT, FREE, {})
    add_tier(ledger, "tier_later", 4, valid_from=clock() + timedelta(days=1))
    views = {t.tier_id: t for t in ledger.tiers(EVENT)}
    assert {k: (v.seats_left, v.on_sale) for k, v in views.items()} == {
        FREE: (2, True), FULL: (1, True), USD: (5, True), "tier_later": (4, False),
    }  # fmt: skip
    assert views[FREE].is_free and not views[USD].is_free
    assert views[USD].question == "T-shirt size?" and views[USD].price == 1999
    clock.advance(days=2)
    assert {t.tier_id: t.on_sale for t in ledger.tiers(EVENT)}["tier_later"]
    assert ledger.tiers("evt_none") == []


def test_seeding_twice_adds_nothing(ledger: Ledger):
    assert not ledger.add_event(EVENT, "Another name")
    assert ledger.add_event("evt_new", "New event")
    assert len(ledger.tiers(EVENT)) == 3


def test_my_registrations_lists_free_and_paid_ones(ledger: Ledger):
    ledger.add_event("evt_b", "Busan Half")
    ledger.add_tier(Tier(id="tier_b2", event_id="evt_b", name="Half", price=0, currency="KRW",
                         capacity=5))  # fmt: skip
    ledger.start_registration("u_1", "evt_b", "tier_b2", {"q": "a"})
    reservation_id = ledger.start_registration("u_1", EVENT, USD, {"size": "M"}).reservation_id
    assert reservation_id
    assert [r.event_id for r in ledger.registrations_for("u_1")] == ["evt_b"]
    ledger.handle_callback(paid(ledger, reservation_id))
    listed = ledger.registrations_for("u_1")
    assert [(r.event_id, r.tier_name, r.answers) for r in listed] == [
        ("evt_b", "Half", {"q": "a"}),
        (EVENT, "Full course (abroad)", {"size": "M"}),
    ]
    assert ledger.registrations_for("u_2") == []
