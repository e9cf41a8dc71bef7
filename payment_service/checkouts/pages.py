"""The hosted checkout pages: the buyer's view of a checkout, the pay action and the return."""

from __future__ import annotations

import math
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, redirect, render_template, request

from payment_service.checkouts.models import Checkout
from payment_service.checkouts.payflow import (
    NotPayable,
    page_url,
    settle_return,
    signed_redirect,
    start_payment,
)
from payment_service.checkouts.services import name_in_logs
from payment_service.checkouts.tokens import token_is_valid
from payment_service.db import utcnow
from payment_service.merchants.models import Merchant
from payment_service.providers.base import ProviderError
from shared_contracts.checkouts import CheckoutStatus
from shared_contracts.money import format_amount

blp = Blueprint("checkout_pages", __name__, template_folder="templates")

_STATUS_PAGES = {
    CheckoutStatus.PAID: ("Payment received", "Thank you, your payment went through. Your ticket is being confirmed."),
    CheckoutStatus.REFUNDED: ("Payment refunded", "This payment was refunded to you."),
    CheckoutStatus.EXPIRED: ("This checkout has expired", "The time to pay for this ticket ran out, so no payment was taken. You can start again from the event page."),
    CheckoutStatus.CANCELED: ("This checkout was canceled", "No payment was taken. You can start again from the event page."),
    CheckoutStatus.FAILED: ("Payment failed", "Your payment was declined too many times, so this checkout is closed. No money was taken."),
}  # fmt: skip


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
        title, message = _STATUS_PAGES[status]
        link_status = (
            "paid"
            if status == CheckoutStatus.PAID
            else ("canceled" if status == CheckoutStatus.REFUNDED else status.value)
        )
        target = checkout.success_url if status == CheckoutStatus.PAID else checkout.cancel_url
        link = signed_redirect(target, checkout.id, link_status, merchant.active_secrets()[0])
        return render_template("checkout/message.html", title=title, message=message, link=link,
                               link_text=f"Back to {merchant.name}", checkout=checkout)  # fmt: skip
    seconds_left = max(0, int((checkout.expires_at - utcnow()).total_seconds()))
    remaining = settings.max_payment_attempts - checkout.attempts
    return render_template(
        "checkout/pay.html",
        checkout=checkout,
        merchant=merchant,
        amount=format_amount(checkout.amount, checkout.currency),
        minutes_left=math.ceil(seconds_left / 60),
        expires_at=checkout.expires_at.strftime("%H:%M UTC"),
        token=request.args["t"],
        declined=checkout.attempts > 0,
        attempts_left=remaining,
        cancel_link=page_url(settings, checkout, "/return") + "&buyer_canceled=1",
    )


@blp.post("/checkout/<checkout_id>/pay")
def pay(checkout_id: str) -> Response:
    token = request.form.get("t")
    if _load(checkout_id, token) is None:
        return _refused()
    try:
        url = start_payment(
            _ext("payment_db"), _ext("payment_providers"), _ext("payment_settings"), checkout_id
        )
    except NotPayable:
        return redirect(f"/checkout/{checkout_id}?t={token}", code=303)
    except ProviderError:
        body = render_template("checkout/message.html", title="The payment provider is not answering",
                               message="Nothing was charged. Please try again in a minute; your ticket is still held.",
                               link=f"/checkout/{checkout_id}?t={token}", link_text="Try again")  # fmt: skip
        return Response(body, status=503, headers={"Retry-After": "30"})
    return redirect(url, code=303)


@blp.get("/checkout/<checkout_id>/return")
def back(checkout_id: str) -> Response:
    if _load(checkout_id, request.args.get("t")) is None:
        return _refused()
    settled = settle_return(
        _ext("payment_db"), _ext("payment_providers"), _ext("payment_settings"), checkout_id,
        buyer_canceled=request.args.get("buyer_canceled") == "1", request_id=g.request_id,
    )  # fmt: skip
    return redirect(settled.redirect_to, code=303)


def init_app(app: Flask) -> None:
    app.register_blueprint(blp)
