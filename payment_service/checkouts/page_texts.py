"""What the hosted checkout pages say: the status and error pages' texts, and how the time
left and the deadline read."""

from __future__ import annotations

import math
from datetime import datetime

from shared_contracts.checkouts import CheckoutStatus

STATUS_PAGES = {
    CheckoutStatus.PAID: ("Payment received", "Thank you, your payment went through. Your ticket is being confirmed."),
    CheckoutStatus.REFUNDED: ("Payment refunded", "This payment was refunded to you."),
    CheckoutStatus.EXPIRED: ("This checkout has expired", "The time to pay for this ticket ran out, so no payment was taken. You can start again from the event page."),
    CheckoutStatus.CANCELED: ("This checkout was canceled", "No payment was taken. You can start again from the event page."),
    CheckoutStatus.FAILED: ("Payment failed", "Your payment was declined too many times, so this checkout is closed. No money was taken."),
}  # fmt: skip
# Paid after the checkout had closed: the platform may refuse it, and the service then refunds.
LATE_PAYMENT_PAGE = ("Payment received after the checkout closed", "Your payment arrived after this checkout had closed. The organiser will either confirm your ticket or refund your payment in full.")  # fmt: skip

ERROR_PAGES = {
    404: ("Page not found", "There is no page at this address. Open the payment link from the event page again."),
    405: ("This page cannot be opened this way", "Open the payment link from the event page again."),
    413: ("The form sent was too large", "Go back to the payment page and try again."),
}  # fmt: skip
CLIENT_ERROR = ("This request could not be handled", "Open the payment link from the event page again.")  # fmt: skip
SERVER_ERROR = ("Something went wrong on our side", "Please try again in a minute. If it keeps happening, go back to the event page and start again.")  # fmt: skip


def time_left(seconds: int) -> str:
    """Whole minutes up to an hour, hours and minutes past it: "1439 more minutes" beside a
    clock time read as a deadline already passed."""
    minutes = math.ceil(seconds / 60)
    if minutes <= 60:
        return f"{minutes} more minute{'' if minutes == 1 else 's'}"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min more" if minutes else f"{hours} h more"


def deadline(expires_at: datetime, now: datetime) -> str:
    """The deadline's UTC clock time, with the date when it is not today (UTC)."""
    if expires_at.date() == now.date():
        return f"{expires_at:%H:%M} UTC"
    return f"{expires_at.day} {expires_at:%b %H:%M} UTC"
