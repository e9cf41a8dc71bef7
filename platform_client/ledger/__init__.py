"""The reservation ledger: tiers, seat holds, registrations and payments an event platform
embeds (or copies) beside its own tables.

Wiring, in short::

    engine = ledger_engine("postgresql+psycopg://…")   # or "sqlite:///var/platform.db"
    create_schema(engine)                               # production: your Alembic migrations
    ledger = Ledger(engine, PaymentServiceClient(url, api_key), LedgerConfig(
        callback_url="https://platform.example/hooks/ticket-payments",
        success_url="https://platform.example/registrations/{reservation_id}",
        cancel_url="https://platform.example/registrations/{reservation_id}?canceled=1",
        provider=provider))  # required: your merchant's provider; "sandbox" only on a service
                             # run with PAYMENT_SANDBOX=1 (another service answers 422)
    mount_callback_endpoint(app, "/hooks/ticket-payments", secrets=[signing_secret],
                            handler=ledger.handle_callback, seen=ledger.seen_store())

and run ``ledger.sweep_expired_holds()`` every minute or so.

The rules: capacity is taken under the tier's row lock (SQLite: the write lock every
transaction of a ``ledger_engine`` takes at BEGIN), one live hold per user and event (a partial
unique index), a registration for a paid tier only from a verified ``ticket_payment.paid``
callback whose checkout, amount, currency and provider match the hold, and every callback
recorded by its ``webhook-id`` in the transaction of its effect.
"""

from platform_client.ledger.checkout import LedgerConfig, RegistrationStarted
from platform_client.ledger.engine import ledger_engine, serialise_sqlite_writers
from platform_client.ledger.errors import (
    AlreadyRegistered,
    CheckoutUnavailable,
    LedgerError,
    SaleClosed,
    SoldOut,
    TierHasLiveHolds,
    TierHasRegistrations,
    UnknownTier,
)
from platform_client.ledger.holds import Hold, SeatRequest, SeatTaken, hold_seat, hold_seat_at_once
from platform_client.ledger.models import (
    Event,
    LedgerBase,
    PaymentRecord,
    ProcessedCallback,
    Registration,
    Reservation,
    ReservationStatus,
    Tier,
    create_schema,
    utcnow,
)
from platform_client.ledger.seen import LedgerSeenStore
from platform_client.ledger.services import Ledger
from platform_client.ledger.views import RegistrationView, ReservationView, TierView

__all__ = [
    "AlreadyRegistered",
    "CheckoutUnavailable",
    "Event",
    "Hold",
    "Ledger",
    "LedgerBase",
    "LedgerConfig",
    "LedgerError",
    "LedgerSeenStore",
    "PaymentRecord",
    "ProcessedCallback",
    "Registration",
    "RegistrationStarted",
    "RegistrationView",
    "Reservation",
    "ReservationStatus",
    "ReservationView",
    "SaleClosed",
    "SeatRequest",
    "SeatTaken",
    "SoldOut",
    "Tier",
    "TierHasLiveHolds",
    "TierHasRegistrations",
    "TierView",
    "UnknownTier",
    "create_schema",
    "hold_seat",
    "hold_seat_at_once",
    "ledger_engine",
    "serialise_sqlite_writers",
    "utcnow",
]
