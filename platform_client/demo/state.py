"""Demo: what the views need (settings, engine, client, ledger), kept in app.extensions."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from flask import Flask, current_app
from sqlalchemy import Engine

from platform_client.client import PaymentServiceClient
from platform_client.demo.settings import DemoSettings
from platform_client.demo.sweeper import Sweeper
from platform_client.ledger import Ledger, TierView

#: How long a posted registration form trusts a tier it read (names and question only).
FORM_TIER_SECONDS = 5.0


class FormTiers:
    """The tier a registration form is posted to, read at most every few seconds per tier.

    A posted form needs only what rarely changes (the tier's and event's names, its question)
    and the ledger checks seats, price and sale window again when it takes the seat; a catalog
    read per registration is what a busy platform caches first. Unknown tiers are not cached.
    """

    def __init__(
        self,
        ledger: Ledger,
        ttl: float = FORM_TIER_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ledger, self._ttl, self._clock = ledger, ttl, clock
        self._entries: dict[tuple[str, str], tuple[float, TierView]] = {}
        self._lock = threading.Lock()

    def get(self, event_id: str, tier_id: str) -> TierView | None:
        key, now = (event_id, tier_id), self._clock()
        with self._lock:
            entry = self._entries.get(key)
        if entry is not None and entry[0] > now:
            return entry[1]
        tier = self._ledger.tier(event_id, tier_id)
        if tier is not None:
            with self._lock:
                if len(self._entries) > 10_000:
                    self._entries.clear()
                self._entries[key] = (now + self._ttl, tier)
        return tier


EXTENSION = "platform_demo"


@dataclass(frozen=True)
class Demo:
    settings: DemoSettings
    engine: Engine
    client: PaymentServiceClient
    ledger: Ledger
    sweeper: Sweeper | None
    form_tiers: FormTiers = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "form_tiers", FormTiers(self.ledger))


def demo_of(app: Flask) -> Demo:
    found = app.extensions[EXTENSION]
    assert isinstance(found, Demo)
    return found


def current_demo() -> Demo:
    """The running app's Demo (inside a request)."""
    return demo_of(current_app)
