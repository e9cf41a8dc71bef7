"""The buyer's pages after starting: "payment processing" (polls this backend until the ledger
says confirmed or released, or a while longer for a payment that came after the hold's end), a
registration, "my registrations", and the e-mail sign-in."""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TypeGuard
from urllib.parse import urlsplit

from flask import Blueprint, abort, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from platform_client.demo import catalog
from platform_client.demo.identity import Buyer, buyer_errors, current_buyer, sign_in, sign_out
from platform_client.demo.state import current_demo
from platform_client.errors import InvalidSignature
from platform_client.ledger import ReservationStatus
from platform_client.ledger.models import RELEASED_STATUSES
from platform_client.redirects import RedirectStatus, verify_redirect

blueprint = Blueprint("status", __name__)

#: Seconds between the processing page's reloads while the ledger has no answer yet.
REFRESH_SECONDS = 2
#: How long after a released hold's deadline the page keeps reloading for a payment that
#: arrived too late: its callback comes within seconds unless this platform was unreachable.
LATE_PAYMENT_WAIT = timedelta(minutes=2)
#: Return statuses that say the buyer's money may be on its way.
_PAYING = (RedirectStatus.PAID, RedirectStatus.PROCESSING)


@blueprint.get("/reservations/<id:reservation_id>")
def reservation(reservation_id: str) -> Response | str | tuple[str, int]:
    """The page the checkout returns to (success and cancel alike). Only the ledger's state
    decides what it says; the return URL's signed status just picks the wording meanwhile."""
    demo = current_demo()
    buyer = current_buyer()
    if buyer is None:
        return _sign_in_page(request.full_path, status=401)
    view = demo.ledger.reservation(reservation_id)
    if view is None:
        abort(404)
    if view.user_id != buyer.user_id:
        # Someone else signed in on this browser since (the form signs in whoever it names):
        # offer the way back to this page, and show nothing of the other buyer's.
        return _sign_in_page(request.full_path, status=403, other_buyer=True)
    hint = redirect_hint(request.args, demo.settings.signing_secrets, view.checkout_id)
    pending = view.status == ReservationStatus.PENDING_PAYMENT
    # The buyer paid, but the hold was released first (the sweeper, or an expiry callback, at
    # the same moment): the payment's callback registers them if a place is free, else it is
    # refunded. Only a callback can tell which, so wait for it a while.
    paid_late = hint in _PAYING and view.status in RELEASED_STATUSES
    waiting_late = paid_late and demo.ledger.clock() < view.expires_at + LATE_PAYMENT_WAIT
    return render_template(
        "reservation.html",
        view=view,
        hint=hint.value if hint else None,
        paid_late=paid_late,
        names=catalog.names(demo.engine),
        refresh=REFRESH_SECONDS if pending or waiting_late else None,
    )


@blueprint.get("/registrations/<id:registration_id>")
def registration(registration_id: str) -> Response | str | tuple[str, int]:
    demo = current_demo()
    buyer = current_buyer()
    if buyer is None:
        return _sign_in_page(request.full_path, status=401)
    found = next(
        (
            r
            for r in demo.ledger.registrations_for(buyer.user_id)
            if r.registration_id == registration_id
        ),
        None,
    )
    if found is None:
        abort(404)
    return render_template("registration.html", registration=found)


@blueprint.get("/my/registrations")
def my_registrations() -> Response | str | tuple[str, int]:
    demo = current_demo()
    buyer = current_buyer()
    if buyer is None:
        return _sign_in_page(url_for("status.my_registrations"), status=200)
    return render_template(
        "my_registrations.html",
        buyer=buyer,
        registrations=demo.ledger.registrations_for(buyer.user_id),
    )


@blueprint.post("/signin")
def signin() -> Response | tuple[str, int]:
    name = request.form.get("name", "").strip()
    email = request.form.get("email", "").strip()
    target = _safe_next(request.form.get("next"))
    errors = buyer_errors(name, email)
    if errors:
        return _sign_in_page(
            target, status=422, errors=errors, values={"name": name, "email": email}
        )
    sign_in(Buyer(name, email))
    return redirect(target, 303)


@blueprint.post("/signout")
def signout() -> Response:
    sign_out()
    return redirect(url_for("pages.index"), 303)


def redirect_hint(
    query: Mapping[str, str], secrets: Sequence[str], checkout_id: str | None
) -> RedirectStatus | None:
    """The return URL's status when its ``sig`` verifies for this reservation's checkout; a
    forged, replayed-from-elsewhere or missing one gives no hint (never a confirmation)."""
    if not query.get("sig") or checkout_id is None:
        return None
    try:
        result = verify_redirect(query, secrets)
    except InvalidSignature:
        return None
    return result.status if result.checkout_id == checkout_id else None


def _sign_in_page(
    next_url: str,
    *,
    status: int,
    errors: Mapping[str, str] | None = None,
    values: Mapping[str, str] | None = None,
    other_buyer: bool = False,
) -> tuple[str, int]:
    page = render_template(
        "signin.html", next_url=_safe_next(next_url), errors=errors or {}, values=values or {},
        other_buyer=other_buyer,
    )  # fmt: skip
    return page, status


def _safe_next(target: str | None) -> str:
    """Only a path on this site: an open redirect would let a link send buyers anywhere.

    Browsers drop tabs and newlines from a Location and read a backslash as a slash, so a
    slash, a tab and ``/evil.example`` would lead to ``//evil.example``: a control character
    or a backslash is refused, and so is anything that parses with a scheme or a host.
    """
    if _is_local_path(target):
        return target
    return url_for("status.my_registrations")


def _is_local_path(target: str | None) -> TypeGuard[str]:
    # "///host" parses with no host, but a browser reads any run of slashes as "//".
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return False
    if any(unicodedata.category(character) == "Cc" for character in target):
        return False
    parts = urlsplit(target)
    return not parts.scheme and not parts.netloc
