"""The buyer's pages before payment: the event and its tiers, the form, and starting a
registration (free: registered at once; paid: a held seat and a redirect to the checkout)."""

from __future__ import annotations

import logging
import secrets
from datetime import UTC, datetime

from flask import Blueprint, abort, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from platform_client.demo import catalog
from platform_client.demo.identity import Buyer, buyer_errors, current_buyer, mask_email, sign_in
from platform_client.demo.state import current_demo
from platform_client.ledger import (
    AlreadyRegistered,
    CheckoutUnavailable,
    RegistrationStarted,
    ReservationView,
    SaleClosed,
    SoldOut,
    TierView,
    UnknownTier,
)
from shared_contracts.request_ids import is_request_id

log = logging.getLogger(__name__)
blueprint = Blueprint("pages", __name__)

MAX_ANSWER = 100

PROBLEMS: dict[str, tuple[int, str, str]] = {
    "sold_out": (409, "Sold out", "Every place of this tier is taken or held. Held places come "
                 "back when a payment does not finish: try again later or pick another tier."),
    "already_registered": (409, "You are already registered",
                           "You have a registration for this event; see My registrations."),
    "sale_closed": (409, "Sale closed", "This tier is not on sale at the moment."),
    "payment_unavailable": (503, "Payments are unavailable right now",
                            "The payment service could not start your payment, so no place "
                            "was held and nothing was charged. Please try again in a minute."),
}  # fmt: skip


@blueprint.get("/")
def index() -> str:
    return render_template("index.html", events=catalog.events(current_demo().engine))


@blueprint.get("/events/<id:event_id>")
def event_page(event_id: str) -> str:
    demo = current_demo()
    event = catalog.event(demo.engine, event_id) or abort(404)
    tiers = demo.ledger.tiers(event_id)
    return render_template(
        "event.html",
        event=event,
        tiers=[(tier, sale_state(tier)) for tier in tiers],
        buyer=current_buyer(),
    )


@blueprint.route("/events/<id:event_id>/tiers/<id:tier_id>/register", methods=["GET", "POST"])
def register(event_id: str, tier_id: str) -> Response | str | tuple[str, int]:
    demo = current_demo()
    # The tier and its event's name, all a start needs before the ledger: one query for the
    # form itself, and for a posted form at most one per tier every few seconds (FormTiers).
    read = demo.ledger.tier if request.method == "GET" else demo.form_tiers.get
    tier = read(event_id, tier_id) or abort(404)
    event = catalog.EventInfo(tier.event_id, tier.event_name, None)
    if request.method == "GET":
        buyer = current_buyer()
        values = {"name": buyer.name, "email": buyer.email} if buyer else {}
        return render_template("register.html", event=event, tier=tier, values=values, errors={})

    values = {key: request.form.get(key, "").strip() for key in ("name", "email", "answer")}
    errors = buyer_errors(values["name"], values["email"])
    if tier.question and not values["answer"]:
        errors["answer"] = "Please answer this question."
    if len(values["answer"]) > MAX_ANSWER:
        errors["answer"] = f"At most {MAX_ANSWER} characters."
    if errors:
        page = render_template(
            "register.html", event=event, tier=tier, values=values, errors=errors
        )
        return page, 422
    buyer = Buyer(values["name"], values["email"])
    sign_in(buyer)
    answers = {tier.question: values["answer"]} if tier.question else {}
    try:
        started = demo.ledger.start_registration(
            buyer.user_id,
            event_id,
            tier_id,
            answers,
            email=buyer.email,
            order_name=f"{event.name} - {tier.name}"[:200],
            request_id=_request_id(),
        )
    except UnknownTier:
        abort(404)
    except SoldOut:
        return problem("sold_out", event_id)
    except AlreadyRegistered:
        return problem(
            "already_registered", event_id, registration_id=_registration_of(buyer, event_id)
        )
    except SaleClosed:
        return problem("sale_closed", event_id)
    except CheckoutUnavailable as exc:
        log.warning("register.checkout_unavailable tier=%s error=%s", tier_id, exc)
        return problem("payment_unavailable", event_id)
    log.info(
        "register.started user=%s buyer=%s tier=%s reservation=%s registration=%s",
        buyer.user_id, mask_email(buyer.email), tier_id, started.reservation_id,
        started.registration_id,
    )  # fmt: skip
    held = _other_tier_hold(started, tier)
    if held is not None:
        return holding_other_tier(held, started.checkout_url, asked=tier)
    if started.checkout_url:
        return redirect(started.checkout_url, 303)
    if started.registration_id:
        return redirect(
            url_for("status.registration", registration_id=started.registration_id), 303
        )
    # A paid hold whose checkout is still being created by a concurrent double submit.
    assert started.reservation_id is not None
    return redirect(url_for("status.reservation", reservation_id=started.reservation_id), 303)


def problem(code: str, event_id: str, registration_id: str | None = None) -> tuple[str, int]:
    status, title, message = PROBLEMS[code]
    page = render_template(
        "problem.html", code=code, title=title, message=message, event_id=event_id,
        registration_id=registration_id,
    )  # fmt: skip
    return page, status


def holding_other_tier(
    held: ReservationView, checkout_url: str | None, asked: TierView
) -> tuple[str, int]:
    """The buyer asked for ``asked`` but holds a place in another tier of the event: say so,
    with the way to pay for that hold (its reservation page while its checkout is made)."""
    pay_url = checkout_url or url_for("status.reservation", reservation_id=held.reservation_id)
    names = catalog.names(current_demo().engine)
    page = render_template(
        "holding.html", held=held, held_tier=names.get(held.tier_id, held.tier_id),
        asked=asked, pay_url=pay_url,
    )  # fmt: skip
    return page, 409


def sale_state(tier: TierView, now: datetime | None = None) -> str:
    """``on_sale``, ``sold_out``, ``not_yet`` or ``closed``, for the event page's buttons."""
    if not tier.on_sale:
        now = now or datetime.now(UTC)
        return "not_yet" if tier.valid_from is not None and now < tier.valid_from else "closed"
    return "sold_out" if tier.seats_left <= 0 else "on_sale"


def _other_tier_hold(started: RegistrationStarted, asked: TierView) -> ReservationView | None:
    """The hold the ledger answered with, when it is for another tier than ``asked``.

    One hold per buyer and event: a buyer who holds a place in another tier gets that hold
    back. Sending them on to pay it would charge for a tier they did not just ask for (a free
    tier's form included); the same tier is a double submit, sent on to its checkout."""
    if started.reservation_id is None or started.tier_id in (None, asked.tier_id):
        return None
    return current_demo().ledger.reservation(started.reservation_id)


def _registration_of(buyer: Buyer, event_id: str) -> str | None:
    """The buyer's registration for the event, for the "already registered" page's link."""
    registrations = current_demo().ledger.registrations_for(buyer.user_id)
    return next((r.registration_id for r in registrations if r.event_id == event_id), None)


def _request_id() -> str:
    given = request.headers.get("X-Request-ID", "")
    return given if is_request_id(given) else "req_" + secrets.token_hex(12)
