"""The buyer's path: open (or reuse) the provider session, and settle the buyer's return."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit, urlunsplit

import structlog
from sqlalchemy import update

from payment_service.checkouts.models import Checkout
from payment_service.checkouts.tokens import make_token
from payment_service.db import Database
from payment_service.merchants.models import Merchant
from payment_service.payments.services import apply_payment
from payment_service.providers.base import (
    ProviderError,
    SessionRequest,
    SessionState,
    SessionStatus,
)
from payment_service.providers.registry import ProviderRegistry
from payment_service.settings import Settings
from shared_contracts.checkouts import CheckoutStatus
from shared_contracts.signing import sign_redirect

log = structlog.get_logger(__name__)


class NotPayable(Exception):
    """The checkout is no longer open; the page shows its status instead."""


class ProviderNotConfigured(Exception):
    """The checkout's provider is no longer configured here: no payment can be started, and
    none taken at its session could be heard of (its webhooks are refused, the sweep skips it)."""


def page_base(settings: Settings, checkout_id: str) -> str:
    """Where every URL of a checkout's pages starts: public_url may carry a path (a proxy's
    prefix), so no page link or redirect is root-relative."""
    return f"{settings.public_url}/checkout/{checkout_id}"


def page_url(settings: Settings, checkout: Checkout, suffix: str = "") -> str:
    token = make_token(settings.secret_key, checkout.id, checkout.expires_at)
    return f"{page_base(settings, checkout.id)}{suffix}?t={token}"


def buyer_cancel_url(settings: Settings, checkout: Checkout) -> str:
    """The return that says the buyer gave up (the pay page's cancel link, the provider's
    cancel, the way back from a page that cannot take the payment)."""
    return page_url(settings, checkout, "/return") + "&buyer_canceled=1"


def start_payment(
    db: Database, registry: ProviderRegistry, settings: Settings, checkout_id: str
) -> str:
    """The provider URL to send the buyer to. The session is created on the first press of
    the pay button and reused after (also after a decline); the provider call happens outside
    any transaction, and is idempotent per checkout, so a double click opens one session.

    Raises NotPayable, ProviderNotConfigured (also with a session: a payment there could not
    be recorded), or ProviderUnavailable/ProviderRejected from the adapter."""
    with db.transaction() as session:
        checkout = session.get(Checkout, checkout_id)
    if checkout is None or checkout.effective_status() != CheckoutStatus.OPEN:
        raise NotPayable(checkout_id)
    if checkout.provider not in registry:
        raise ProviderNotConfigured(checkout.provider)
    if checkout.provider_session_url:
        return checkout.provider_session_url
    created = registry.get(checkout.provider).create_session(
        SessionRequest(
            checkout_id=checkout.id,
            amount=checkout.amount,
            currency=checkout.currency,
            description=checkout.order_name,
            return_url=page_url(settings, checkout, "/return"),
            cancel_url=buyer_cancel_url(settings, checkout),
            webhook_url=f"{settings.public_url}/v1/providers/{checkout.provider}/webhooks",
            expires_at=checkout.expires_at,
            idempotency_key=f"session:{checkout.id}",
        )
    )
    with db.transaction() as session:
        session.execute(
            update(Checkout)
            .where(Checkout.id == checkout.id, Checkout.provider_session_id.is_(None))
            .values(
                provider_session_id=created.session_id, provider_session_url=created.redirect_url
            )
        )
    log.info(
        "checkout.provider_session",
        checkoutId=checkout.id,
        reservationId=checkout.reservation_id,
        providerSessionId=created.session_id,
    )
    return created.redirect_url


@dataclass(frozen=True)
class Settled:
    checkout: Checkout
    status: str  # paid | processing | canceled | expired | failed | retry
    redirect_to: str


def settle_return(
    db: Database, registry: ProviderRegistry, settings: Settings, checkout_id: str, *,
    buyer_canceled: bool, request_id: str | None,
) -> Settled:  # fmt: skip
    """Ask the provider what really happened (the query string is never trusted), apply it
    through the same path as a webhook, and decide where the buyer goes next."""
    with db.transaction() as session:
        checkout = session.get(Checkout, checkout_id)
        if checkout is None:
            raise NotPayable(checkout_id)
    truth = _ask_provider(registry, checkout)
    if truth is not None and truth.last_payment is not None:
        with db.transaction() as session:
            apply_payment(session, checkout.provider, truth.last_payment,
                          max_attempts=settings.max_payment_attempts, request_id=request_id)  # fmt: skip
    with db.transaction() as session:
        checkout = session.get(Checkout, checkout_id)  # type: ignore[assignment]
        merchant = session.get(Merchant, checkout.merchant_id)
        assert merchant is not None
        secrets = merchant.active_secrets()
    status = _redirect_status(checkout, truth, buyer_canceled, checkout.provider in registry)
    if status == "retry":
        return Settled(checkout, status, page_url(settings, checkout) + "&declined=1")
    target = checkout.success_url if status in ("paid", "processing") else checkout.cancel_url
    return Settled(checkout, status, signed_redirect(target, checkout.id, status, secrets[0]))


def _ask_provider(registry: ProviderRegistry, checkout: Checkout) -> SessionStatus | None:
    if checkout.provider_session_id is None or checkout.provider not in registry:
        return None
    try:
        return registry.get(checkout.provider).retrieve_session(checkout.provider_session_id)
    except ProviderError as exc:
        log.warning(
            "checkout.return_status_unknown",
            checkoutId=checkout.id,
            reservationId=checkout.reservation_id,
            error=str(exc),
        )
        return None


def _redirect_status(
    checkout: Checkout, truth: SessionStatus | None, buyer_canceled: bool, provider_known: bool
) -> str:
    status = checkout.effective_status()
    if status == CheckoutStatus.PAID:
        return "paid"
    if status in (CheckoutStatus.FAILED, CheckoutStatus.EXPIRED, CheckoutStatus.CANCELED):
        return status.value
    if status == CheckoutStatus.REFUNDED:
        return "canceled"
    # Still open.
    if not provider_known:  # "processing" would promise a word no webhook or sweep can bring
        return "canceled" if buyer_canceled else "retry"  # the page then says it is unavailable
    if truth is None and checkout.provider_session_id is not None and not buyer_canceled:
        return "processing"  # the provider did not answer: the callback will tell
    if truth is not None and truth.state == SessionState.COMPLETE:
        return "processing"
    if buyer_canceled:
        return "canceled"
    return "retry"  # declined with attempts left, or back before paying: the checkout page


def signed_redirect(url: str, checkout_id: str, status: str, secret: str) -> str:
    """Append checkoutId, status and sig (CONTRACT §7) to the platform's URL."""
    parts = urlsplit(url)
    extra = urlencode(
        {
            "checkoutId": checkout_id,
            "status": status,
            "sig": sign_redirect(secret, checkout_id, status),
        }
    )
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))
