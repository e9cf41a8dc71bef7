"""The reference platform's FormTiers: a posted form reads its tier at most every few
seconds; the ledger still checks seats under its lock (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, update

from platform_client.demo.state import FormTiers
from platform_client.ledger import Ledger, SoldOut, Tier
from tests.platform_client.ledger.helpers import EVENT, FULL, USD


class Ticks:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def set_question(engine: Engine, tier_id: str, question: str | None) -> None:
    with engine.begin() as connection:
        connection.execute(update(Tier).where(Tier.id == tier_id).values(question=question))


def test_a_tier_is_read_again_only_after_its_seconds(ledger: Ledger, engine: Engine):
    ticks = Ticks()
    tiers = FormTiers(ledger, ttl=5.0, clock=ticks)
    first = tiers.get(EVENT, USD)
    assert first is not None and first.question == "T-shirt size?"
    set_question(engine, USD, "Shoe size?")
    ticks.now = 4.9
    assert tiers.get(EVENT, USD) == first  # still the one read at 0
    ticks.now = 5.1
    again = tiers.get(EVENT, USD)
    assert again is not None and again.question == "Shoe size?"


def test_unknown_tiers_are_not_remembered(ledger: Ledger):
    ticks = Ticks()
    tiers = FormTiers(ledger, clock=ticks)
    assert tiers.get(EVENT, "tier_new") is None
    ledger.add_tier(Tier(id="tier_new", event_id=EVENT, name="New", price=100,
                         currency="KRW", capacity=1))  # fmt: skip
    assert tiers.get(EVENT, "tier_new") is not None  # no wait for a tier just added


def test_a_remembered_tier_never_sells_a_seat_the_ledger_does_not_have(ledger: Ledger):
    tiers = FormTiers(ledger, clock=Ticks())
    assert tiers.get(EVENT, FULL) is not None  # remembered with seats left
    ledger.start_registration("u_1", EVENT, FULL, {})
    ledger.start_registration("u_2", EVENT, FULL, {})
    assert tiers.get(EVENT, FULL).seats_left == 2  # stale, as allowed
    with pytest.raises(SoldOut):  # the ledger counts the seats, not the form's copy
        ledger.start_registration("u_3", EVENT, FULL, {})
