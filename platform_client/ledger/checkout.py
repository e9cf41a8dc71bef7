"""The ledger's configuration and the checkout request it derives from a hold."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta

from platform_client.checkouts import Checkout, CheckoutRequest, Customer
from platform_client.client import PaymentServiceClient
from platform_client.errors import IdempotencyKeyInUse
from platform_client.ledger.holds import Hold

#: Replaced in success_url and cancel_url by the reservation's id.
RESERVATION_PLACEHOLDER = "{reservation_id}"
#: How long a repeated submit waits for the first submit's create call to finish.
KEY_IN_USE_WAIT = 5.0
KEY_IN_USE_POLL = 0.1


@dataclass(frozen=True)
class LedgerConfig:
    """How the ledger asks for checkouts. ``provider`` has no default: "sandbox" exists only on
    a service run with PAYMENT_SANDBOX=1, and a production service would refuse every purchase
    with 422. It is stored on each hold, and a paid callback must name the same provider."""

    callback_url: str  # e.g. "http://127.0.0.1:8001/hooks/ticket-payments"
    success_url: str  # may contain "{reservation_id}", formatted per reservation
    cancel_url: str  # may contain "{reservation_id}"
    provider: str  # e.g. "sandbox" against a development service
    reservation_ttl: timedelta = timedelta(minutes=10)


@dataclass(frozen=True)
class RegistrationStarted:
    reservation_id: str | None  # None for a free tier
    registration_id: str | None  # set when confirmed at once (free tier)
    checkout_id: str | None
    checkout_url: str | None  # where to send the buyer (paid tier)
    # The held tier: the one asked for, or the buyer's live hold of another tier of the event
    # (one hold per buyer and event), which a page should name rather than send them to pay.
    tier_id: str | None = None


def idempotency_key(reservation_id: str) -> str:
    """One checkout per reservation: every create for it, first or repeated, uses this key.

    A replayed answer (``Checkout.replayed``) is still current here: each hold has a new
    reservation id, and a repeated submit calls create only for a live hold with no checkout
    stored yet. Nobody has been sent to that checkout, so nobody canceled it, and it expires
    with the hold, which has not (an expired hold is released, and the next submit holds anew)."""
    return f"reservation:{reservation_id}"


def checkout_request(hold: Hold, config: LedgerConfig) -> CheckoutRequest:
    """The create-checkout body for a hold. It depends only on the stored hold and the
    configuration, so a repeated submit sends the identical body and the service replays the
    first answer. The checkout expires with the hold, never later."""
    return CheckoutRequest(
        reservation_id=hold.reservation_id,
        event_id=hold.event_id,
        tier_id=hold.tier_id,
        order_name=hold.order_name,
        amount=hold.amount,
        currency=hold.currency,
        customer=Customer(platform_user_id=hold.user_id, email=hold.email),
        success_url=_with_reservation(config.success_url, hold.reservation_id),
        cancel_url=_with_reservation(config.cancel_url, hold.reservation_id),
        callback_url=config.callback_url,
        provider=hold.provider,
        expires_at=hold.expires_at,
    )


def _with_reservation(url: str, reservation_id: str) -> str:
    # Not str.format: a URL may hold other braces. Reservation ids are URL-safe already.
    return url.replace(RESERVATION_PLACEHOLDER, reservation_id)


def create_checkout_for(
    client: PaymentServiceClient,
    hold: Hold,
    config: LedgerConfig,
    *,
    request_id: str | None = None,
    wait: float = KEY_IN_USE_WAIT,
) -> Checkout:
    """Create the hold's checkout, or get the one created for it already: every submit sends
    the same key and body, so the service replays the first answer. While another submit's
    create is still running (IdempotencyKeyInUse) it retries for up to ``wait`` seconds.
    Raises the client's PaymentServiceError."""
    body = checkout_request(hold, config)
    deadline = time.monotonic() + wait
    while True:
        try:
            return client.create_checkout(
                body, idempotency_key=idempotency_key(hold.reservation_id), request_id=request_id
            )
        except IdempotencyKeyInUse:
            if time.monotonic() >= deadline:
                raise
            time.sleep(KEY_IN_USE_POLL)
