"""Callbacks into ledger changes: a paid checkout confirms its hold, an unpaid end releases it.

Each function runs inside the caller's transaction, locks the reservation first, returns early
for a repeat, and records the ``webhook-id`` beside its effect, so a repeat is a no-op even
when two deliveries race past the receiver's ``seen`` check.
"""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from platform_client.callbacks import CallbackEvent, TicketPaymentPaid
from platform_client.ledger.holds import (
    Hold,
    lock_reservation,
    pending_hold,
    registration_of,
    release_hold,
    retake_seat,
)
from platform_client.ledger.models import (
    RELEASED_STATUSES,
    PaymentRecord,
    ProcessedCallback,
    Registration,
    Reservation,
    ReservationStatus,
    new_id,
)
from platform_client.receiver import RejectCallback


class PaidOutcome(StrEnum):
    CONFIRMED = "confirmed"
    LATE_CONFIRMED = "late_confirmed"  # the hold had been released; a free seat was re-taken
    REPEAT = "repeat"  # this webhook-id, or this checkout's payment, was handled before


class ReleaseOutcome(StrEnum):
    RELEASED = "released"
    NOT_HELD = "not_held"  # no longer pending (paid, or released before): nothing to give back
    OTHER_CHECKOUT = "other_checkout"  # about a checkout that is not the hold's own
    UNKNOWN = "unknown_reservation"
    REPEAT = "repeat"


def payment_mismatches(hold: Hold, event: TicketPaymentPaid) -> list[str]:
    """The wire fields in which a paid callback disagrees with the hold it claims to pay."""
    pairs = {
        "checkoutId": (hold.checkout_id, event.checkout_id),
        "eventId": (hold.event_id, event.platform_event_id),
        "tierId": (hold.tier_id, event.tier_id),
        "amount": (hold.amount, event.amount),
        "currency": (hold.currency, event.currency),
        "provider": (hold.provider, event.provider),
    }
    if hold.checkout_id is None:  # the create call has not stored it yet: nothing to compare
        del pairs["checkoutId"]
    return [name for name, (expected, got) in pairs.items() if expected != got]


def is_processed(session: Session, webhook_id: str) -> bool:
    return session.get(ProcessedCallback, webhook_id) is not None


def mark_processed(session: Session, event: CallbackEvent) -> None:
    session.add(ProcessedCallback(webhook_id=event.event_id, type=str(event.type)))


def record_paid(session: Session, event: TicketPaymentPaid) -> PaidOutcome:
    """Confirm the registration of a paid hold, or raise RejectCallback (which the service
    answers with a refund): ``unknown_reservation`` 422, ``payment_mismatch`` 422,
    ``already_registered`` 409, ``reservation_expired`` 409 (a late payment, no seat left).
    The buyer's other hold for the event, if any (started after this one was released), is
    released with its seat: its checkout stays open, and a payment of it is already_registered."""
    reservation = lock_reservation(session, event.reservation_id)
    if reservation is None:
        raise RejectCallback("unknown_reservation", "No such reservation.", status=422)
    if is_processed(session, event.event_id):
        return PaidOutcome.REPEAT
    recorded = select(PaymentRecord.id).where(PaymentRecord.checkout_id == event.checkout_id)
    if session.scalar(recorded) is not None:
        mark_processed(session, event)  # another delivery of this payment, e.g. a replay
        return PaidOutcome.REPEAT
    mismatches = payment_mismatches(Hold.of(reservation), event)
    if mismatches:
        raise RejectCallback(
            "payment_mismatch",
            "The payment does not match the reservation.",
            status=422,
            details={"fields": mismatches},
        )
    # A buyer whose hold was released may have started again: that newer hold goes when this
    # one is paid, or they keep two seats. Locked now, after this reservation and before the
    # registration check and any tier (the lock order); at most one is pending (the index).
    newer = pending_hold(session, reservation.user_id, reservation.event_id)
    if reservation.status == ReservationStatus.CONFIRMED or registration_of(
        session, reservation.user_id, reservation.event_id
    ):
        raise already_registered()
    if newer is not None and newer.id != reservation.id:
        # Given back first, so that in the same tier this payment can take that very seat.
        # A rejection below rolls it back: the buyer keeps the newer hold.
        release_hold(session, newer, ReservationStatus.RELEASED)
    outcome = PaidOutcome.CONFIRMED
    if reservation.status in RELEASED_STATUSES:
        if not retake_seat(session, reservation.tier_id):
            raise RejectCallback(
                "reservation_expired", "The hold expired and the tier is full.", status=409
            )
        outcome = PaidOutcome.LATE_CONFIRMED
    reservation.status = ReservationStatus.CONFIRMED
    reservation.checkout_id = reservation.checkout_id or event.checkout_id
    session.add_all(
        [
            Registration(
                id=new_id("reg"), user_id=reservation.user_id, event_id=reservation.event_id,
                tier_id=reservation.tier_id, reservation_id=reservation.id,
                answers=dict(reservation.answers),
            ),
            PaymentRecord(
                id=new_id("prc"), checkout_id=event.checkout_id, reservation_id=reservation.id,
                payment_id=event.payment_id, provider=event.provider, tx_id=event.tx_id,
                amount=event.amount, currency=event.currency, paid_at=event.paid_at,
            ),
        ]
    )  # fmt: skip
    mark_processed(session, event)
    session.flush()
    return outcome


def settle_paid_conflict(session: Session, event: TicketPaymentPaid) -> PaidOutcome | None:
    """After record_paid lost a unique-index race: REPEAT if this payment is recorded now,
    a rejection if the buyer got registered another way, None if neither explains it."""
    recorded = select(PaymentRecord.id).where(PaymentRecord.checkout_id == event.checkout_id)
    if is_processed(session, event.event_id) or session.scalar(recorded) is not None:
        return PaidOutcome.REPEAT
    reservation = session.get(Reservation, event.reservation_id)
    if reservation and registration_of(session, reservation.user_id, reservation.event_id):
        raise already_registered()
    return None


def already_registered() -> RejectCallback:
    return RejectCallback(
        "already_registered", "The buyer is already registered for this event.", status=409
    )


def record_release(
    session: Session, event: CallbackEvent, status: ReservationStatus
) -> ReleaseOutcome:
    """Release the hold of an expired, canceled or finally failed checkout, once."""
    reservation = lock_reservation(session, event.reservation_id)
    if is_processed(session, event.event_id):
        return ReleaseOutcome.REPEAT
    mark_processed(session, event)
    if reservation is None:
        return ReleaseOutcome.UNKNOWN
    if reservation.checkout_id not in (None, event.checkout_id):
        return ReleaseOutcome.OTHER_CHECKOUT
    if not release_hold(session, reservation, status):
        return ReleaseOutcome.NOT_HELD
    return ReleaseOutcome.RELEASED


def record_only(session: Session, event: CallbackEvent) -> bool:
    """Note a callback that changes nothing here (a refund, a non-final decline); False if it
    was noted before."""
    if is_processed(session, event.event_id):
        return False
    mark_processed(session, event)
    return True
