"""The checkout state machine: one table of every (status, outcome) pair and where it leads.

Reading the table is reading the rules: `paid` never goes back; a payment confirmed after the
checkout left `open` is still recorded (money was taken) and the platform decides; a decline
only counts while the checkout is open.
"""

from __future__ import annotations

from enum import StrEnum

from shared_contracts.checkouts import CheckoutStatus

OPEN = CheckoutStatus.OPEN
PAID = CheckoutStatus.PAID
FAILED = CheckoutStatus.FAILED
EXPIRED = CheckoutStatus.EXPIRED
CANCELED = CheckoutStatus.CANCELED
REFUNDED = CheckoutStatus.REFUNDED


class Outcome(StrEnum):
    SUCCEEDED = "succeeded"  # the provider captured a payment
    DECLINED = "declined"  # a declined attempt, with attempts left
    DECLINED_LAST = "declined_last"  # the declined attempt that uses up the last one
    DEADLINE = "deadline"  # expiresAt passed
    CANCEL = "cancel"  # the platform canceled
    REFUND = "refund"  # the payment was refunded


# None: the outcome is refused in that status (the caller answers invalid_state).
TRANSITIONS: dict[tuple[CheckoutStatus, Outcome], CheckoutStatus | None] = {
    (OPEN, Outcome.SUCCEEDED): PAID,
    (EXPIRED, Outcome.SUCCEEDED): PAID,  # late payment: recorded; the platform decides
    (CANCELED, Outcome.SUCCEEDED): PAID,  # late payment, likewise
    (FAILED, Outcome.SUCCEEDED): PAID,  # a success reported after the last decline
    (PAID, Outcome.SUCCEEDED): PAID,  # duplicate: no-op
    (REFUNDED, Outcome.SUCCEEDED): REFUNDED,  # stale news
    (OPEN, Outcome.DECLINED): OPEN,  # the buyer may try again
    (OPEN, Outcome.DECLINED_LAST): FAILED,
    (PAID, Outcome.DECLINED): PAID,  # out of order: a paid checkout stays paid
    (PAID, Outcome.DECLINED_LAST): PAID,
    (FAILED, Outcome.DECLINED): FAILED,
    (FAILED, Outcome.DECLINED_LAST): FAILED,
    (EXPIRED, Outcome.DECLINED): EXPIRED,
    (EXPIRED, Outcome.DECLINED_LAST): EXPIRED,
    (CANCELED, Outcome.DECLINED): CANCELED,
    (CANCELED, Outcome.DECLINED_LAST): CANCELED,
    (REFUNDED, Outcome.DECLINED): REFUNDED,
    (REFUNDED, Outcome.DECLINED_LAST): REFUNDED,
    (OPEN, Outcome.DEADLINE): EXPIRED,
    (PAID, Outcome.DEADLINE): PAID,
    (FAILED, Outcome.DEADLINE): FAILED,
    (EXPIRED, Outcome.DEADLINE): EXPIRED,
    (CANCELED, Outcome.DEADLINE): CANCELED,
    (REFUNDED, Outcome.DEADLINE): REFUNDED,
    (OPEN, Outcome.CANCEL): CANCELED,
    (CANCELED, Outcome.CANCEL): CANCELED,  # repeated cancel: no-op
    (PAID, Outcome.CANCEL): None,
    (FAILED, Outcome.CANCEL): None,
    (EXPIRED, Outcome.CANCEL): None,
    (REFUNDED, Outcome.CANCEL): None,
    (PAID, Outcome.REFUND): REFUNDED,
    (REFUNDED, Outcome.REFUND): REFUNDED,  # repeated: no-op
    (OPEN, Outcome.REFUND): None,
    (FAILED, Outcome.REFUND): None,
    (EXPIRED, Outcome.REFUND): None,
    (CANCELED, Outcome.REFUND): None,
}


def next_status(current: CheckoutStatus, outcome: Outcome) -> CheckoutStatus | None:
    return TRANSITIONS[(CheckoutStatus(current), outcome)]


def is_late(current: CheckoutStatus, outcome: Outcome) -> bool:
    """A payment captured after the checkout had left `open`."""
    return outcome == Outcome.SUCCEEDED and current in (EXPIRED, CANCELED, FAILED)


def decline_outcome(attempts_before: int, max_attempts: int) -> Outcome:
    return Outcome.DECLINED_LAST if attempts_before + 1 >= max_attempts else Outcome.DECLINED
