"""The payment service: create_app(settings=None) builds everything; nothing at import time."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from flask import Flask
from flask.sessions import SessionInterface, SessionMixin

from payment_service.settings import Settings

if TYPE_CHECKING:
    from payment_service.providers.registry import ProviderRegistry

F = TypeVar("F", bound=Callable[..., Any])


class _NoSessions(SessionInterface):
    """This service keeps no browser sessions (the checkout page carries a signed token):
    Flask's cookie session would build a signing serializer on every request for nothing."""

    def open_session(self, app: Flask, request: Any) -> None:
        return None  # Flask then uses a NullSession, and never saves it

    def save_session(self, app: Flask, session: SessionMixin, response: Any) -> None:
        return None


class PaymentFlask(Flask):
    session_interface = _NoSessions()

    def ensure_sync(self, func: F) -> F:  # type: ignore[override]
        """No view or hook of ours is a coroutine (create_app checks, once): skip Flask's
        check of each hook and view, done on every request (twenty inspections per API call)."""
        return func

    def refuse_coroutines(self) -> None:
        """Raise TypeError if a view (a MethodView's methods too), hook or error handler is a
        coroutine function: ensure_sync would not run it."""
        registries = (
            self.before_request_funcs, self.after_request_funcs, self.teardown_request_funcs,
            self.url_value_preprocessors, self.template_context_processors,
        )  # fmt: skip
        hooks = [f for registry in registries for funcs in registry.values() for f in funcs]
        hooks += self.teardown_appcontext_funcs
        hooks += [
            handler
            for by_code in self.error_handler_spec.values()  # scope -> code -> class -> handler
            for by_class in by_code.values()
            for handler in by_class.values()
        ]
        for view in self.view_functions.values():
            hooks.append(view)
            view_class = getattr(view, "view_class", None)  # a MethodView: its methods run
            for method in getattr(view_class, "methods", None) or ():
                hooks.append(getattr(view_class, method.lower(), None))
        for func in hooks:
            if func is not None and inspect.iscoroutinefunction(inspect.unwrap(func)):
                raise TypeError(f"{func!r} is a coroutine function; this app runs none")


def create_app(settings: Settings | None = None) -> Flask:
    from payment_service import api, guards, logging, ops
    from payment_service.callbacks import resources as event_resources
    from payment_service.checkouts import pages as checkout_pages
    from payment_service.checkouts import resources as checkout_resources
    from payment_service.checkouts.services import CheckoutPolicy
    from payment_service.db import Database
    from payment_service.merchants.auth import KeyCache, authenticate_request
    from payment_service.providers import resources as provider_resources

    settings = settings or Settings.from_env()
    app = PaymentFlask(__name__)
    app.config["SECRET_KEY"] = settings.secret_key
    app.config["JSON_SORT_KEYS"] = False
    app.extensions["payment_settings"] = settings
    app.extensions["payment_db"] = Database(settings.database_url)
    app.extensions["payment_key_cache"] = KeyCache()

    logging.init_app(app)  # first: every later hook and error carries the request id
    ops.init_app(app)
    app.before_request(authenticate_request)  # before the body guards: 401 comes first
    guards.init_app(app)
    registry = build_registry(settings)
    app.extensions["payment_providers"] = registry
    app.extensions["payment_policy"] = CheckoutPolicy(
        providers=registry.names(), allow_private_callbacks=settings.allow_private_callbacks
    )
    rest = api.create_api(app)
    rest.register_blueprint(checkout_resources.blp)
    rest.register_blueprint(provider_resources.blp)
    rest.register_blueprint(event_resources.blp)
    app.extensions["payment_api"] = rest
    checkout_pages.init_app(app)
    if settings.sandbox:
        mount_sandbox(app, settings)
    app.refuse_coroutines()
    return app


def build_registry(settings: Settings) -> ProviderRegistry:
    from payment_service.providers.registry import ProviderRegistry
    from payment_service.providers.sandbox import SandboxProvider, sandbox_base_url

    providers = []
    if settings.sandbox:
        base_url = settings.sandbox_url or sandbox_base_url(settings.public_url)
        providers.append(
            SandboxProvider(base_url, settings.sandbox_api_key, settings.sandbox_webhook_secret)
        )
    return ProviderRegistry(providers)


def mount_sandbox(app: Flask, settings: Settings) -> None:
    """Serve the sandbox PSP under /sandbox of this server (CONTRACT §9, PAYMENT_SANDBOX=1)."""
    from werkzeug.middleware.dispatcher import DispatcherMiddleware

    from payment_service.sandbox_psp import create_sandbox_app
    from payment_service.sandbox_psp.config import SandboxConfig

    sandbox = create_sandbox_app(
        SandboxConfig(
            api_key=settings.sandbox_api_key,
            webhook_secret=settings.sandbox_webhook_secret,
            database_url=settings.sandbox_database_url,
        )
    )
    app.extensions["payment_sandbox_app"] = sandbox
    app.wsgi_app = DispatcherMiddleware(app.wsgi_app, {"/sandbox": sandbox})  # type: ignore[method-assign]


def close_app(app: Flask) -> None:
    """Release what create_app started: database pools and the sandbox's webhook sender."""
    from payment_service.sandbox_psp import close_sandbox_app

    app.extensions["payment_db"].dispose()
    sandbox = app.extensions.get("payment_sandbox_app")
    if sandbox is not None:
        close_sandbox_app(sandbox)
