"""The hosted checkout pages: the buyer's view of a checkout, the pay action and the return."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, redirect, render_template, request

from payment_service import errors
from payment_service.checkouts.models import Checkout
from payment_service.checkouts.page_texts import (
    CLIENT_ERROR,
    ERROR_PAGES,
    LATE_PAYMENT_PAGE,
    SERVER_ERROR,
    STATUS_PAGES,
    deadline,
    time_left,
)
from payment_service.checkouts.payflow import (
    NotPayable,
    ProviderNotConfigured,
    buyer_cancel_url,
    page_base,
    page_url,
    settle_return,
    signed_redirect,
    start_payment,
)
from payment_service.checkouts.services import name_in_logs
from payment_service.checkouts.tokens import token_is_valid
from payment_service.db import utcnow
from payment_service.merchants.models import Merchant
from payment_service.providers.base import ProviderError, ProviderRejected
from shared_contracts.checkouts import CheckoutStatus
from shared_contracts.money import format_amount

blp = Blueprint("checkout_pages", __name__, template_folder="templates")

PAGES_PREFIX = "/checkout/"
# The pages load nothing but their inline <style>. No `form-action`: browsers apply it to the
# redirect that answers the pay form, which goes to the provider's origin.
SECURITY_HEADERS = {
    "Cache-Control": "no-store",  # the URLs carry the page token
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'"
    ),
}


def _ext(name: str) -> Any:
    return current_app.extensions[name]


def _load(checkout_id: str, token: str | None) -> tuple[Checkout, Merchant] | None:
    """The checkout and its merchant, None for a bad token or a missing checkout. Every page
    loads it first, so from here on the request's log lines name the checkout."""
    settings = _ext("payment_settings")
    if not token or not token_is_valid(settings.secret_key, checkout_id, token):
        return None
    with _ext("payment_db").transaction() as session:
        checkout = session.get(Checkout, checkout_id)
        merchant = session.get(Merchant, checkout.merchant_id) if checkout else None
    if checkout is None or merchant is None:
        return None
    name_in_logs(checkout)
    return checkout, merchant


def _refused() -> Response:
    body = render_template("checkout/message.html", title="This link is not valid",
                           message="The payment link is wrong or has expired. Go back to the event page and start again.")  # fmt: skip
    return Response(body, status=403)


@blp.get("/checkout/<checkout_id>")
def show(checkout_id: str) -> Response | str:
    loaded = _load(checkout_id, request.args.get("t"))
    if loaded is None:
        return _refused()
    checkout, merchant = loaded
    settings = _ext("payment_settings")
    status = checkout.effective_status()
    if status != CheckoutStatus.OPEN:
        return _status_page(checkout, merchant, status)
    if checkout.provider not in _ext("payment_providers"):
        return _not_available(checkout, merchant)
    now = utcnow()
    seconds_left = max(0, int((checkout.expires_at - now).total_seconds()))
    return render_template(
        "checkout/pay.html",
        checkout=checkout,
        merchant=merchant,
        amount=format_amount(checkout.amount, checkout.currency),
        time_left=time_left(seconds_left),
        expires_at=deadline(checkout.expires_at, now),
        pay_url=page_base(settings, checkout.id) + "/pay",
        token=request.args["t"],
        declined=checkout.attempts > 0,
        attempts_left=settings.max_payment_attempts - checkout.attempts,
        cancel_link=buyer_cancel_url(settings, checkout),
    )


def _status_page(checkout: Checkout, merchant: Merchant, status: CheckoutStatus) -> str:
    late = status == CheckoutStatus.PAID and checkout.late
    title, message = LATE_PAYMENT_PAGE if late else STATUS_PAGES[status]
    link_status = (
        "paid"
        if status == CheckoutStatus.PAID
        else ("canceled" if status == CheckoutStatus.REFUNDED else status.value)
    )
    target = checkout.success_url if status == CheckoutStatus.PAID else checkout.cancel_url
    link = signed_redirect(target, checkout.id, link_status, merchant.active_secrets()[0])
    return render_template("checkout/message.html", title=title, message=message, link=link,
                           link_text=f"Back to {merchant.name}", checkout=checkout, merchant=merchant)  # fmt: skip


@blp.post("/checkout/<checkout_id>/pay")
def pay(checkout_id: str) -> Response:
    loaded = _load(checkout_id, request.form.get("t"))
    if loaded is None:
        return _refused()
    checkout, merchant = loaded
    settings = _ext("payment_settings")
    try:
        url = start_payment(_ext("payment_db"), _ext("payment_providers"), settings, checkout_id)
    except NotPayable:
        return redirect(page_url(settings, checkout), code=303)
    except ProviderNotConfigured:
        return _not_available(checkout, merchant)
    except ProviderRejected:  # permanent: trying again in a minute would meet the same answer
        return _cannot_pay(checkout, merchant, 502, "The payment could not be started",
                           f"The payment provider refused to start this payment, so nothing was charged. Go back to {merchant.name} and start again from there.")  # fmt: skip
    except ProviderError:
        body = render_template("checkout/message.html", title="The payment provider is not answering",
                               message="Nothing was charged. Please try again in a minute; your ticket is still held.",
                               link=page_url(settings, checkout), link_text="Try again",
                               checkout=checkout, merchant=merchant)  # fmt: skip
        return Response(body, status=503, headers={"Retry-After": "30"})
    return redirect(url, code=303)


def _not_available(checkout: Checkout, merchant: Merchant) -> Response:
    """The checkout's provider is no longer configured: no Retry-After, waiting will not help."""
    return _cannot_pay(checkout, merchant, 503, "This payment method is not available",
                       f"{merchant.name} cannot take payments this way at the moment. Go back to them to find another way to pay.")  # fmt: skip


def _cannot_pay(
    checkout: Checkout, merchant: Merchant, status: int, title: str, message: str
) -> Response:
    """A page that sends the buyer back to the organiser, the way the pay page's cancel does."""
    back = buyer_cancel_url(_ext("payment_settings"), checkout)
    body = render_template("checkout/message.html", title=title, message=message, link=back,
                           link_text=f"Back to {merchant.name}", checkout=checkout, merchant=merchant)  # fmt: skip
    return Response(body, status=status)


@blp.get("/checkout/<checkout_id>/return")
def back(checkout_id: str) -> Response:
    if _load(checkout_id, request.args.get("t")) is None:
        return _refused()
    settled = settle_return(
        _ext("payment_db"), _ext("payment_providers"), _ext("payment_settings"), checkout_id,
        buyer_canceled=request.args.get("buyer_canceled") == "1", request_id=g.request_id,
    )  # fmt: skip
    return redirect(settled.redirect_to, code=303)


def _error_page(status: int) -> Response:
    """An error under /checkout/ as the buyer's browser should see it: a page, not JSON."""
    title, message = ERROR_PAGES.get(status, SERVER_ERROR if status >= 500 else CLIENT_ERROR)
    body = render_template("checkout/message.html", title=title, message=message)
    return Response(body, status=status)


def _secure(response: Response) -> Response:
    """Every answer under /checkout/ (pages, redirects, error pages) is for a browser only:
    never cached, never framed, never sniffed, and it tells no other site its URL."""
    if request.path.startswith(PAGES_PREFIX):
        response.headers.update(SECURITY_HEADERS)
    return response


def init_app(app: Flask) -> None:
    app.register_blueprint(blp)
    # App-wide, not on the blueprint: a 404 or 405 under /checkout/ matches no page of it.
    app.after_request(_secure)
    errors.render_as_pages(app, PAGES_PREFIX, _error_page)
