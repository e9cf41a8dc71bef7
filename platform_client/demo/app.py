"""create_app: the reference event platform, built from DemoSettings (or PLATFORM_* variables)."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from flask import Flask, Response
from sqlalchemy import Engine

from platform_client.client import PaymentServiceClient
from platform_client.demo import catalog, pages, status, web
from platform_client.demo.sessions import CachedSerializerSessionInterface
from platform_client.demo.settings import DemoSettings
from platform_client.demo.state import EXTENSION, Demo, demo_of
from platform_client.demo.sweeper import Sweeper
from platform_client.ledger import Ledger, LedgerConfig, create_schema, ledger_engine
from platform_client.receiver import mount_callback_endpoint

log = logging.getLogger(__name__)

CALLBACK_PATH = "/hooks/ticket-payments"


def create_app(
    config: DemoSettings | Mapping[str, str] | None = None,
    *,
    init_db: bool = True,
    sweep_every: float = 0,
) -> Flask:
    """Build the app. ``config`` is DemoSettings, or a mapping read like the environment
    (PLATFORM_* names); None reads the process environment.

    ``init_db`` creates the ledger's tables and seeds the demo event when the database has
    none (``serve`` does it once before forking workers, and passes False). ``sweep_every``
    > 0 starts a daemon thread that releases holds past their TTL every that many seconds.
    """
    settings = config if isinstance(config, DemoSettings) else DemoSettings.from_env(config)
    engine = ledger_engine(settings.database_url)
    if init_db:
        initialise(engine)
    client = PaymentServiceClient(settings.payment_service_url, settings.api_key)
    base = settings.public_url
    ledger = Ledger(
        engine,
        client,
        LedgerConfig(
            callback_url=settings.callback_url,
            success_url=f"{base}/reservations/{{reservation_id}}?return=success",
            cancel_url=f"{base}/reservations/{{reservation_id}}?return=cancel",
            provider="sandbox",  # the demo pays on a development service (PAYMENT_SANDBOX=1)
            reservation_ttl=settings.reservation_ttl,
        ),
    )
    sweeper = Sweeper(ledger, every=sweep_every).start() if sweep_every > 0 else None

    app = Flask(__name__)
    app.session_interface = CachedSerializerSessionInterface()
    app.config.update(
        SECRET_KEY=settings.secret_key,
        # Cookies are per host, not per port: keep clear of anything else on 127.0.0.1.
        SESSION_COOKIE_NAME="platform_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",  # a form on another site cannot post with our cookie
        SESSION_COOKIE_SECURE=settings.public_url.startswith("https://"),
        MAX_CONTENT_LENGTH=64 * 1024,
    )
    app.extensions[EXTENSION] = Demo(settings, engine, client, ledger, sweeper)
    app.jinja_env.globals["price_text"] = catalog.price_text
    web.init_app(app, CALLBACK_PATH)
    app.register_blueprint(pages.blueprint)
    app.register_blueprint(status.blueprint)
    mount_callback_endpoint(
        app,
        CALLBACK_PATH,
        secrets=settings.signing_secrets,
        handler=ledger.handle_callback,
        seen=ledger.seen_store(),
    )
    app.add_url_rule("/healthz", "healthz", lambda: Response("ok\n", mimetype="text/plain"))
    return app


def initialise(engine: Engine) -> bool:
    """Create the ledger's tables if missing and seed the demo event; True if it seeded."""
    create_schema(engine)
    seeded = catalog.seed(engine)
    if seeded:
        log.info("demo.seeded event=%s", catalog.SEED_EVENT_ID)
    return seeded


def close_app(app: Flask) -> None:
    """Stop the sweeper and release connections (tests build many apps in one process)."""
    demo = demo_of(app)
    if demo.sweeper is not None:
        demo.sweeper.stop()
    demo.client.close()
    demo.engine.dispose()
