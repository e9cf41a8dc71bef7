"""The demo's catalogue: the seeded event and its tiers, and the names its pages show.

The ledger owns tiers, holds and registrations; this module only puts one event in an empty
database (a real platform has an admin for that) and reads names for display.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from platform_client.ledger import Event, Tier
from shared_contracts.money import format_amount

SEED_EVENT_ID = "evt_seoul_marathon_2027"
TSHIRT = "T-shirt size (XS, S, M, L, XL)"


@dataclass(frozen=True)
class EventInfo:
    id: str
    name: str
    starts_at: datetime | None


def seed(engine: Engine) -> bool:
    """Put the demo event and its three tiers in a database that has no event; True if it did."""
    with Session(engine) as session, session.begin():
        if session.scalar(select(Event.id).limit(1)) is not None:
            return False
        session.add(
            Event(
                id=SEED_EVENT_ID,
                name="Seoul Marathon 2027",
                starts_at=datetime(2027, 3, 20, 23, 0, tzinfo=UTC),  # 08:00 in Seoul
            )
        )
        session.flush()  # the tiers' foreign key needs the event row first
        session.add_all(
            [
                Tier(
                    id="tier_10k_free", event_id=SEED_EVENT_ID, name="10K fun run",
                    price=0, currency="KRW", capacity=200, question=TSHIRT,
                ),
                Tier(
                    id="tier_full_krw", event_id=SEED_EVENT_ID, name="Full course",
                    price=30000, currency="KRW", capacity=100, question=TSHIRT,
                ),
                Tier(
                    id="tier_full_usd", event_id=SEED_EVENT_ID,
                    name="Full course (international entry)",
                    price=4500, currency="USD", capacity=50, question=TSHIRT,
                ),
            ]
        )  # fmt: skip
    return True


def events(engine: Engine) -> list[EventInfo]:
    with Session(engine) as session:
        rows = session.scalars(select(Event).order_by(Event.starts_at, Event.id)).all()
        return [EventInfo(row.id, row.name, row.starts_at) for row in rows]


def event(engine: Engine, event_id: str) -> EventInfo | None:
    with Session(engine) as session:
        row = session.get(Event, event_id)
        return None if row is None else EventInfo(row.id, row.name, row.starts_at)


def names(engine: Engine) -> dict[str, str]:
    """Event and tier ids to their names, for pages that list registrations."""
    with Session(engine) as session:
        found = {row.id: row.name for row in session.scalars(select(Event))}
        found.update({row.id: row.name for row in session.scalars(select(Tier))})
        return found


def price_text(price: int, currency: str) -> str:
    """``Free``, ``₩30,000`` or ``$45.00``: minor units shown with the currency's exponent."""
    return "Free" if price == 0 else format_amount(price, currency)
