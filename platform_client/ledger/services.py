"""Ledger: the use cases a platform calls; each method owns its transactions."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime

from sqlalchemy import Engine, Update, bindparam, exists, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import sessionmaker

from platform_client.callbacks import (
    CallbackEvent,
    TicketPaymentCanceled,
    TicketPaymentExpired,
    TicketPaymentFailed,
    TicketPaymentPaid,
)
from platform_client.client import PaymentServiceClient
from platform_client.errors import PaymentServiceError
from platform_client.ledger import admin, payments
from platform_client.ledger.checkout import LedgerConfig, RegistrationStarted, create_checkout_for
from platform_client.ledger.engine import serialise_sqlite_writers
from platform_client.ledger.errors import AlreadyRegistered, CheckoutUnavailable
from platform_client.ledger.holds import (
    Hold,
    SeatRequest,
    SeatTaken,
    hold_seat,
    hold_seat_at_once,
    lock_reservation,
    pending_hold,
    registration_of,
    release_hold,
)
from platform_client.ledger.models import (
    Registration,
    Reservation,
    ReservationStatus,
    Tier,
    new_id,
    utcnow,
)
from platform_client.ledger.seen import LedgerSeenStore
from platform_client.ledger.single import SingleStatement
from platform_client.ledger.single import supported as single_statements_supported
from platform_client.ledger.views import (
    RegistrationView,
    ReservationView,
    TierView,
    registration_views,
    reservation_view,
    tier_view,
    tier_view_at_once,
    tier_views,
)
from platform_client.receiver import SeenStore

log = logging.getLogger(__name__)

SWEEP_BATCH = 500
_PENDING = ReservationStatus.PENDING_PAYMENT


def store_checkout_statement(*, unregistered_only: bool = True) -> Update:
    """The UPDATE that keeps a checkout on its pending hold. ``unregistered_only``: not when
    the buyer is registered for the event by now. It is a new statement, so it sees a
    registration committed while the hold's statement waited for the tier (a late payment of
    the same buyer, see hold_seat_at_once): such a hold gets no checkout."""
    conditions = [
        Reservation.id == bindparam("reservation_id"),
        Reservation.status == _PENDING.value,
        Reservation.checkout_url.is_(None),
    ]
    if unregistered_only:
        registered = exists().where(
            Registration.user_id == Reservation.user_id,
            Registration.event_id == Reservation.event_id,
        )
        conditions.append(~registered)
    return (
        update(Reservation)
        .where(*conditions)
        .values(
            checkout_id=bindparam("checkout_id"),
            checkout_url=bindparam("checkout_url"),
            updated_at=bindparam("updated_at"),  # bound: SingleStatement runs no onupdate defaults
        )
    )


#: Built once (building a statement costs more CPU than running it); the first URL stays, and
#: only a hold still waiting for payment gets one (not a hold released meanwhile).
_STORE_CHECKOUT = store_checkout_statement()
_STORE_CHECKOUT_AT_ONCE = SingleStatement(_STORE_CHECKOUT)
_STORED_CHECKOUT = select(Reservation.checkout_id).where(
    Reservation.id == bindparam("reservation_id")
)
_RELEASING: Mapping[type[CallbackEvent], ReservationStatus] = {
    TicketPaymentExpired: ReservationStatus.EXPIRED,
    TicketPaymentCanceled: ReservationStatus.CANCELED,
}


class Ledger:
    """Reservations, registrations and payments of one platform.

    A SQLite engine is given ``serialise_sqlite_writers`` if it lacks it: without it the
    capacity check would run without a lock (``ledger_engine`` makes engines with it).
    """

    def __init__(
        self,
        engine: Engine,
        client: PaymentServiceClient,
        config: LedgerConfig,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        serialise_sqlite_writers(engine)
        self.engine = engine
        self.client = client
        self.config = config
        self.clock = clock
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        # PostgreSQL (psycopg 3): one-statement units of work run outside a transaction block, straight
        # on a pooled connection (single.py): no BEGIN and COMMIT round trips.
        self._at_once = single_statements_supported(engine)

    def start_registration(
        self,
        user_id: str,
        event_id: str,
        tier_id: str,
        answers: Mapping[str, str],
        *,
        email: str | None = None,
        order_name: str | None = None,
        request_id: str | None = None,
    ) -> RegistrationStarted:
        """Register at once (free tier) or hold a seat and return the checkout to pay it.

        Raises UnknownTier, SaleClosed, SoldOut, AlreadyRegistered, or CheckoutUnavailable
        (its hold released: by this submit, or by the concurrent one that made it, whose create
        failed; a checkout created for a released hold is canceled, never returned). A user
        with a live hold for the event gets its checkout back.
        """
        request = SeatRequest(
            user_id=user_id, event_id=event_id, tier_id=tier_id, answers=dict(answers),
            email=email, order_name=order_name,
        )  # fmt: skip
        seat = self._take_seat(request)
        if seat.hold is None:
            extra = {**_ids(None, None), "registration_id": seat.registration_id}
            log.info("ledger.registered_free", extra=extra)
            return RegistrationStarted(None, seat.registration_id, None, None)
        hold = seat.hold
        if seat.existing and hold.checkout_url is not None:
            log.info("ledger.hold_repeated", extra=_ids(hold.reservation_id, hold.checkout_id))
            return RegistrationStarted(
                hold.reservation_id, None, hold.checkout_id, hold.checkout_url, hold.tier_id
            )
        try:
            checkout = create_checkout_for(self.client, hold, self.config, request_id=request_id)
        except PaymentServiceError as exc:
            # Only the submit that made the hold gives it back; a repeat leaves it to its owner.
            released = False if seat.existing else self._release(hold.reservation_id)
            if isinstance(released, Hold):  # a repeat's checkout got onto the hold: the answer
                extra = {**_ids(hold.reservation_id, released.checkout_id), "code": exc.code}
                log.info("ledger.hold_kept", extra=extra)
                return RegistrationStarted(
                    hold.reservation_id,
                    None,
                    released.checkout_id,
                    released.checkout_url,
                    hold.tier_id,
                )
            extra = {**_ids(hold.reservation_id, None), "code": exc.code, "released": released}
            log.warning("ledger.checkout_unavailable", extra=extra)
            raise CheckoutUnavailable(
                "the payment service did not create the checkout", exc
            ) from exc
        if not self._store_checkout(
            hold.reservation_id, checkout.checkout_id, checkout.checkout_url
        ):
            if self._release_if_registered(hold):
                self._cancel_unstored(hold.reservation_id, checkout.checkout_id, request_id)
                raise AlreadyRegistered("the user is already registered for this event")
            raise self._hold_gone(hold.reservation_id, checkout.checkout_id, request_id)
        message = "ledger.hold_repeated" if seat.existing else "ledger.hold_created"
        log.info(message, extra=_ids(hold.reservation_id, checkout.checkout_id))
        return RegistrationStarted(
            hold.reservation_id, None, checkout.checkout_id, checkout.checkout_url, hold.tier_id
        )

    def _store_checkout(self, reservation_id: str, checkout_id: str, checkout_url: str) -> bool:
        """Keep the checkout on its hold, so a repeated submit gets the same one back. False if
        the hold no longer waits for payment (released, expired, ...): nothing was stored."""
        stored = {"reservation_id": reservation_id, "checkout_id": checkout_id,
                  "checkout_url": checkout_url, "updated_at": utcnow()}  # fmt: skip
        for last in (False, True):
            try:
                if self._at_once:
                    changed = _STORE_CHECKOUT_AT_ONCE.execute(self.engine, stored)
                else:
                    with self.engine.begin() as connection:  # one Core UPDATE: no Session
                        changed = connection.execute(_STORE_CHECKOUT, stored).rowcount
                break
            except DBAPIError as exc:
                # A connection that died under the UPDATE (a database restart): once more on
                # a fresh one. A repeat changes nothing if the first got through (it writes
                # only where no URL is stored yet): the row below tells.
                if last or not exc.connection_invalidated:
                    raise
                extra = {**_ids(reservation_id, checkout_id), "error": type(exc.orig).__name__}
                log.warning("ledger.store_checkout_reconnected", extra=extra)
        if changed:
            return True
        # Nothing changed: this checkout is stored already (a retried UPDATE whose first try
        # committed, or a concurrent repeat that got the same checkout replayed), or the hold
        # left pending_payment before any checkout was stored on it.
        with self.engine.connect() as connection:
            found = connection.scalar(_STORED_CHECKOUT, {"reservation_id": reservation_id})
        return found == checkout_id

    def _release_if_registered(self, hold: Hold) -> bool:
        """Whether the buyer turned out to be registered for the event (a late payment of an
        earlier hold, confirmed while this hold's statement waited for the tier): then this
        hold, still pending, gives its seat back. Asked only when its checkout was not stored."""
        with self._sessions.begin() as session:
            if registration_of(session, hold.user_id, hold.event_id) is None:
                return False
            reservation = lock_reservation(session, hold.reservation_id)
            if reservation is not None and reservation.status == _PENDING:
                release_hold(session, reservation, ReservationStatus.RELEASED)
        log.warning("ledger.registered_meanwhile", extra=_ids(hold.reservation_id, None))
        return True

    def _cancel_unstored(
        self, reservation_id: str, checkout_id: str, request_id: str | None
    ) -> None:
        """Cancel a checkout that was not stored on its hold, so that nobody pays it. Best
        effort: should the cancel fail, the checkout still expires with the hold, and a payment
        made before that is refunded unless the ledger can take it."""
        try:
            self.client.cancel_checkout(checkout_id, request_id=request_id)
        except PaymentServiceError as exc:
            extra = {**_ids(reservation_id, checkout_id), "code": exc.code}
            log.warning("ledger.checkout_cancel_failed", extra=extra)

    def _hold_gone(
        self, reservation_id: str, checkout_id: str, request_id: str | None
    ) -> CheckoutUnavailable:
        """The hold was released before its checkout was stored (the submit that made it saw
        its own create fail) and its seat may be someone else's: cancel the checkout."""
        log.warning("ledger.hold_released_meanwhile", extra=_ids(reservation_id, checkout_id))
        self._cancel_unstored(reservation_id, checkout_id, request_id)
        message = "the hold was released before its checkout was stored"
        return CheckoutUnavailable(message, PaymentServiceError("hold_released", message))

    def _take_seat(self, request: SeatRequest) -> SeatTaken:
        if not self._at_once:
            return self._take_seat_generally(request)
        hold_id = new_id("res")  # the usual paid start: one statement (see hold_seat_at_once)
        hold = hold_seat_at_once(
            self.engine, request, provider=self.config.provider, now=self.clock(),
            ttl=self.config.reservation_ttl, hold_id=hold_id,
        )  # fmt: skip
        if hold is not None:
            return SeatTaken(hold=hold)
        seat = self._take_seat_generally(request)
        if seat.existing and seat.hold is not None and seat.hold.reservation_id == hold_id:
            # The one statement's own hold: it committed, then its connection died. It is
            # this submit's to give back if the checkout fails, not an earlier submit's.
            return replace(seat, existing=False)
        return seat

    def _take_seat_generally(self, request: SeatRequest) -> SeatTaken:
        try:
            with self._sessions.begin() as session:
                return hold_seat(
                    session, request, provider=self.config.provider, now=self.clock(),
                    ttl=self.config.reservation_ttl,
                )  # fmt: skip
        except IntegrityError:
            # A concurrent submit of the same user won a unique index: answer with its result.
            with self._sessions.begin() as session:
                earlier = pending_hold(session, request.user_id, request.event_id)
                if earlier is not None:
                    ids = _ids(earlier.id, earlier.checkout_id)
                    log.info("ledger.concurrent_submit", extra=ids)
                    return SeatTaken(hold=Hold.of(earlier), existing=True)
                if registration_of(session, request.user_id, request.event_id) is not None:
                    raise AlreadyRegistered("the user is already registered") from None
            raise

    def _release(self, reservation_id: str) -> bool | Hold:
        """Give back the hold of a failed create (True if released), unless a repeated submit
        has stored its checkout on it meanwhile: that hold is the buyer's to pay (returned)."""
        with self._sessions.begin() as session:
            reservation = lock_reservation(session, reservation_id)
            if reservation is None:
                return False
            if reservation.checkout_url is not None and reservation.status == _PENDING:
                return Hold.of(reservation)
            return release_hold(session, reservation, ReservationStatus.RELEASED)

    def handle_callback(self, event: CallbackEvent) -> None:
        """Apply a verified callback; raises receiver.RejectCallback to refuse it for good.
        paid confirms; expired, canceled and a last failed attempt release the hold; a refund
        or an earlier failed attempt is only noted. Repeats change nothing."""
        if isinstance(event, TicketPaymentPaid):
            self.handle_paid(event)
            return
        status = _RELEASING.get(type(event))
        if isinstance(event, TicketPaymentFailed) and event.attempt >= event.max_attempts:
            status = ReservationStatus.RELEASED
        with self._sessions.begin() as session:
            if status is None:
                outcome = "noted" if payments.record_only(session, event) else "repeat"
            else:
                outcome = payments.record_release(session, event, status)
        extra = {**_ids(event.reservation_id, event.checkout_id), "type": str(event.type)}
        log.info("ledger.callback_handled", extra={**extra, "outcome": str(outcome)})

    def handle_paid(self, event: TicketPaymentPaid) -> None:
        """Confirm the paid hold's registration; see payments.record_paid for the rejections."""
        extra = {**_ids(event.reservation_id, event.checkout_id), "late": event.late}
        try:
            with self._sessions.begin() as session:
                outcome = payments.record_paid(session, event)
        except IntegrityError:
            # A concurrent writer got there first: this payment, or another registration.
            with self._sessions.begin() as session:
                settled = payments.settle_paid_conflict(session, event)
            if settled is None:
                raise
            outcome = settled
        log.info("ledger.paid", extra={**extra, "outcome": str(outcome)})

    def sweep_expired_holds(self) -> int:
        """Expire pending holds past their deadline and give their seats back; the count.
        One short transaction per hold, so a sweep never holds many locks at once."""
        now, expired = self.clock(), 0
        while True:
            with self._sessions.begin() as session:
                due = admin.overdue_holds(session, now, SWEEP_BATCH)
            for reservation_id in due:
                with self._sessions.begin() as session:
                    reservation = admin.expire_hold(session, reservation_id, now)
                    if reservation is not None:
                        expired += 1
                        ids = _ids(reservation.id, reservation.checkout_id)
                        log.info("ledger.hold_expired", extra=ids)
            if len(due) < SWEEP_BATCH:
                return expired

    def delete_tier(self, tier_id: str) -> None:
        """Raises TierHasLiveHolds while a hold waits for payment (see admin.delete_tier)."""
        with self._sessions.begin() as session:
            admin.delete_tier(session, tier_id)

    def add_event(self, event_id: str, name: str, starts_at: datetime | None = None) -> bool:
        """Add an event unless its id exists; True if added."""
        with self._sessions.begin() as session:
            return admin.add_event(session, event_id, name, starts_at)

    def add_tier(self, tier: Tier) -> bool:
        """Add a tier (a new, unsaved ``Tier``) unless its id exists; True if added."""
        with self._sessions.begin() as session:
            return admin.add_tier(session, tier)

    def seen_store(self) -> SeenStore:
        return LedgerSeenStore(self._sessions)

    def reservation(self, reservation_id: str) -> ReservationView | None:
        with self._sessions() as session:
            return reservation_view(session, reservation_id)

    def registrations_for(self, user_id: str) -> list[RegistrationView]:
        with self._sessions() as session:
            return registration_views(session, user_id)

    def tiers(self, event_id: str) -> list[TierView]:
        with self._sessions() as session:
            return tier_views(session, event_id, self.clock())

    def tier(self, event_id: str, tier_id: str) -> TierView | None:
        """One tier of the event (with the event's name), or None: what a registration form
        needs, in one query."""
        if self._at_once:
            return tier_view_at_once(self.engine, event_id, tier_id, self.clock())
        with self.engine.connect() as connection:
            return tier_view(connection, event_id, tier_id, self.clock())


def _ids(reservation_id: str | None, checkout_id: str | None) -> dict[str, object]:
    return {"reservation_id": reservation_id, "checkout_id": checkout_id}
