"""The hosted payment page a buyer is sent to: pay, simulate a decline, or cancel and return."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Flask, redirect, render_template, request
from werkzeug.wrappers import Response as WerkzeugResponse

from payment_service.sandbox_psp import services
from payment_service.sandbox_psp.api import is_down
from payment_service.sandbox_psp.errors import SandboxError
from payment_service.sandbox_psp.runtime import current_sandbox
from payment_service.sandbox_psp.schemas import parse_timestamp
from shared_contracts.money import format_amount

bp = Blueprint("sandbox_pages", __name__)

Page = str | tuple[str, int] | WerkzeugResponse

# What the checkout pages send too: the templates need only their inline <style>. No
# `form-action`: browsers apply it to the redirect that answers the form (to the return URL).
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'"
    ),
}


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)


@bp.after_app_request
def _secure(response: WerkzeugResponse) -> WerkzeugResponse:
    """Every answer outside /api/ is a page (error pages and redirects too, as the app's error
    handler renders them): never cached, never framed, never sniffed, its URL told no one."""
    if not request.path.startswith("/api/"):
        response.headers.update(SECURITY_HEADERS)
    return response


@bp.get("/")
def index() -> Page:
    return render_template(
        "message.html", title="Sandbox PSP", text="The sandbox payment provider is running."
    )


@bp.get("/pay/<session_id>")
def pay_page(session_id: str) -> Page:
    if is_down(current_sandbox()):
        return _outage()
    try:
        session = services.page_session(current_sandbox(), session_id)
    except SandboxError as exc:
        return _message(exc.status, "Payment not found", exc.message)
    return _session_page(session)


@bp.post("/pay/<session_id>")
def pay(session_id: str) -> Page:
    if is_down(current_sandbox()):
        return _outage()
    outcome = request.form.get("outcome", "")
    if outcome not in services.OUTCOMES:
        return _message(400, "Unknown outcome", "Choose one of the buttons on the payment page.")
    try:
        result = services.pay(current_sandbox(), session_id, outcome)
    except SandboxError as exc:
        return _message(exc.status, "Payment not found", exc.message)
    if result.redirect_url is None:
        return render_template("expired.html", session=_view(result.session)), 410
    return redirect(result.redirect_url, code=303)


def _session_page(session: dict[str, Any]) -> Page:
    view = _view(session)
    if session["status"] == "expired":
        return render_template("expired.html", session=view), 410
    if session["status"] == "complete":
        return render_template("complete.html", session=view)
    return render_template("pay.html", session=view)


def _view(session: dict[str, Any]) -> dict[str, Any]:
    """The session plus what the templates show: the formatted amount and the time left."""
    expires_at = parse_timestamp(session["expiresAt"]) or datetime.now(UTC)
    seconds_left = max(int((expires_at - datetime.now(UTC)).total_seconds()), 0)
    last = session["lastPayment"]
    return {
        **session,
        "amountText": format_amount(session["amount"], session["currency"]),
        "expiresText": expires_at.strftime("%Y-%m-%d %H:%M UTC"),
        "minutesLeft": (seconds_left + 59) // 60,
        "lastDeclined": bool(last and last["status"] == "declined"),
    }


def _outage() -> Page:
    return _message(
        503, "Sandbox PSP is down", "The provider is unavailable (a test switch). Try later."
    )


def _message(status: int, title: str, text: str) -> Page:
    return render_template("message.html", title=title, text=text), status
