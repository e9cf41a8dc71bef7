"""What every answer of the demo's pages gets: ids checked in the path, cross-origin posts
refused, security and cache headers, and its own error pages. The callback endpoint is left
alone: it is an API for the payment service, verified by its signature."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Flask, render_template, request
from werkzeug.exceptions import HTTPException
from werkzeug.routing import BaseConverter
from werkzeug.wrappers import Response

from platform_client.demo.state import current_demo

# The pages load nothing but base.html's inline <style>, and reload with a meta refresh (which
# CSP does not govern). No `form-action`: browsers apply it to the redirect that answers the
# registration form, which goes to the payment service's checkout.
SECURITY_HEADERS = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'"
    ),
    # Every page shows who is signed in, and most show their registrations or a form for them.
    "Cache-Control": "no-store",
}
#: Sec-Fetch-Site values of a request this site's own page (or the buyer, typing) started.
_OWN_FETCH_SITES = frozenset({"same-origin", "none"})
ERROR_PAGES: dict[int, tuple[str, str]] = {
    404: ("Page not found", "There is no page at this address."),
    405: ("Not allowed", "This page cannot be used that way."),
    413: ("Too much data", "What was sent is larger than this site accepts."),
    500: ("Something went wrong", "The page could not be shown. Please try again in a minute."),
}


class IdConverter(BaseConverter):
    """An id as the demo and the ledger make them (``evt_…``, ``tier_…``, ``res_`` and
    ``reg_`` with URL-safe base64): anything else is a 404 before any query. PostgreSQL
    refuses a NUL in text, so ``/events/%00`` was a 500."""

    regex = r"[A-Za-z0-9_-]{1,128}"


def init_app(app: Flask, callback_path: str) -> None:
    """Install the converter (as ``<id:…>``; before the blueprints) and the rules above."""
    app.url_map.converters["id"] = IdConverter

    def refuse_cross_origin_posts() -> Response | None:
        if request.method != "POST" or request.path == callback_path or _from_this_site():
            return None
        return Response("cross-origin form posts are refused\n", 403, mimetype="text/plain")

    def add_security_headers(response: Response) -> Response:
        if request.path != callback_path and response.mimetype == "text/html":
            response.headers.update(SECURITY_HEADERS)
        return response

    def error_page(error: HTTPException) -> Response:
        response = error.get_response()  # keeps the status and headers such as 405's Allow
        if request.path == callback_path or error.code not in ERROR_PAGES:
            return response
        title, message = ERROR_PAGES[error.code]
        response.set_data(
            render_template("problem.html", code=error.code, title=title, message=message)
        )
        return response

    app.before_request(refuse_cross_origin_posts)
    app.after_request(add_security_headers)
    for code in ERROR_PAGES:
        app.register_error_handler(code, error_page)


def _from_this_site() -> bool:
    """Whether a POST may have come from one of this site's pages, by what the browser says of
    it: its Origin; without one, its Sec-Fetch-Site; without that, its Referer's origin.

    A request with none of the three is let through: no browser in use today sends a
    cross-site form POST without Origin or Sec-Fetch-Site, so it is a script or a command-line
    client, which a forged page cannot drive with the buyer's cookie. Any of them naming
    another site is refused, Origin `null` included.
    """
    ours = (current_demo().settings.public_url, request.host_url.rstrip("/"))
    origin = request.headers.get("Origin")
    if origin is not None:
        return origin in ours
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None:
        return fetch_site in _OWN_FETCH_SITES
    referrer = request.headers.get("Referer")
    if referrer is None:
        return True
    parts = urlsplit(referrer)
    return bool(parts.netloc) and f"{parts.scheme}://{parts.netloc}" in ours
