"""The sandbox PSP: a stand-in payment provider, its own Flask app, reached only over HTTP."""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, render_template, request
from werkzeug.exceptions import HTTPException

from payment_service.sandbox_psp.config import SandboxConfig

__all__ = ["SandboxConfig", "close_sandbox_app", "create_sandbox_app"]
MAX_BODY_BYTES = 64 * 1024


def create_sandbox_app(config: SandboxConfig | None = None) -> Flask:
    """Build the app (tables included); mountable anywhere, every URL comes from url_for."""
    from payment_service.sandbox_psp import api, controls, pages
    from payment_service.sandbox_psp.errors import HTTP_ERROR_TYPES, SandboxError, error_response
    from payment_service.sandbox_psp.runtime import EXTENSION, Sandbox

    app = Flask(__name__, static_folder=None)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    sandbox = Sandbox(config or SandboxConfig.from_env())
    app.extensions[EXTENSION] = sandbox
    # Per process and on first use, so a forking server starts the thread in each worker.
    app.before_request(sandbox.sender.ensure_started)
    api.init_app(app)
    controls.init_app(app)
    pages.init_app(app)

    @app.errorhandler(SandboxError)
    def _sandbox_error(exc: SandboxError) -> Response:
        return exc.response()

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Any:
        status = exc.code or 500
        if request.path.startswith("/api/"):
            return error_response(status, HTTP_ERROR_TYPES.get(status, "api_error"), exc.name)
        return render_template("message.html", title=exc.name, text=exc.description), status

    return app


def close_sandbox_app(app: Flask) -> None:
    """Stop the webhook sender and close the database connections."""
    from payment_service.sandbox_psp.runtime import EXTENSION

    app.extensions[EXTENSION].close()
