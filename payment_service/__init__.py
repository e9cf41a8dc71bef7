"""The payment service: create_app(settings=None) builds everything; nothing at import time."""

from __future__ import annotations

from flask import Flask

from payment_service.settings import Settings


def create_app(settings: Settings | None = None) -> Flask:
    from payment_service import api, guards, logging, ops
    from payment_service.checkouts import resources as checkout_resources
    from payment_service.checkouts.services import CheckoutPolicy
    from payment_service.db import Database
    from payment_service.merchants.auth import KeyCache, authenticate_request

    settings = settings or Settings.from_env()
    app = Flask(__name__)
    app.config["SECRET_KEY"] = settings.secret_key
    app.config["JSON_SORT_KEYS"] = False
    app.extensions["payment_settings"] = settings
    app.extensions["payment_db"] = Database(settings.database_url)
    app.extensions["payment_key_cache"] = KeyCache()

    logging.init_app(app)  # first: every later hook and error carries the request id
    ops.init_app(app)
    app.before_request(authenticate_request)  # before the body guards: 401 comes first
    guards.init_app(app)
    app.extensions["payment_policy"] = CheckoutPolicy(
        providers=frozenset({"sandbox"}) if settings.sandbox else frozenset(),
        allow_private_callbacks=settings.allow_private_callbacks,
    )
    rest = api.create_api(app)
    rest.register_blueprint(checkout_resources.blp)
    app.extensions["payment_api"] = rest
    return app
