"""The buyer's pages after starting: "payment processing" (polls this backend until the ledger
says confirmed or released), a registration, "my registrations", and the e-mail sign-in."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from flask import Blueprint, abort, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from platform_client.demo import catalog
from platform_client.demo.identity import Buyer, buyer_errors, current_buyer, sign_in, sign_out
from platform_client.demo.state import current_demo
from platform_client.errors import InvalidSignature
from platform_client.ledger import ReservationStatus
from platform_client.redirects import RedirectStatus, verify_redirect

blueprint = Blueprint("status", __name__)

#: Seconds between the processing page's reloads while the ledger has no answer yet.
REFRESH_SECONDS = 2


@blueprint.get("/reservations/<reservation_id>")
def reservation(reservation_id: str) -> Response | str | tuple[str, int]:
    """The page the checkout returns to (success and cancel alike). Only the ledger's state
    decides what it says; the return URL's signed status just picks the wording meanwhile."""
    demo = current_demo()
    buyer = current_buyer()
    if buyer is None:
        return _sign_in_page(request.full_path, status=401)
    view = demo.ledger.reservation(reservation_id)
    if view is None or view.user_id != buyer.user_id:
        abort(404)
    hint = redirect_hint(request.args, demo.settings.signing_secrets, view.checkout_id)
    pending = view.status == ReservationStatus.PENDING_PAYMENT
    return render_template(
        "reservation.html",
        view=view,
        hint=hint.value if hint else None,
        names=catalog.names(demo.engine),
        refresh=REFRESH_SECONDS if pending else None,
    )


@blueprint.get("/registrations/<registration_id>")
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
) -> tuple[str, int]:
    page = render_template(
        "signin.html", next_url=_safe_next(next_url), errors=errors or {}, values=values or {}
    )
    return page, status


def _safe_next(target: str | None) -> str:
    """Only a path on this site: an open redirect would let a link send buyers anywhere."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return url_for("status.my_registrations")
