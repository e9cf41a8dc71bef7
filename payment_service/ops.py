"""Operational endpoints: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import time

import structlog
from flask import Blueprint, Flask, Response, current_app, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from sqlalchemy.exc import SQLAlchemyError

from payment_service.db import Database
from payment_service.errors import ServiceUnavailable

log = structlog.get_logger(__name__)
blp = Blueprint("ops", __name__)


@blp.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up and serving."""
    return {"status": "ok"}


@blp.get("/readyz")
def readyz() -> dict[str, str]:
    """The process can serve traffic: its database answers."""
    try:
        current_app.extensions["payment_db"].ping()
    except SQLAlchemyError as exc:
        log.warning("readyz.database_unreachable", error=type(exc).__name__)
        raise ServiceUnavailable("The database is unreachable.") from None
    return {"status": "ready"}


@blp.get("/metrics")
def metrics() -> Response:
    registry: CollectorRegistry = current_app.extensions["payment_metrics"].registry
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)


class Metrics:
    """The app's Prometheus registry (one per app, so tests can build many apps)."""

    def __init__(self, db: Database | None = None) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "http_requests_total", "HTTP requests", ["method", "route", "status"],
            registry=self.registry,
        )  # fmt: skip
        self.latency = Histogram(
            "http_request_duration_seconds", "HTTP request latency", ["method", "route"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )  # fmt: skip
        if db is not None:
            # Callback delivery state, read from the database at each scrape (any number of
            # workers write it): see payment_service/callbacks/metrics.py.
            from payment_service.callbacks.metrics import DeliveryCollector

            self.registry.register(DeliveryCollector(db))


def init_app(app: Flask) -> None:
    metrics = Metrics(app.extensions.get("payment_db"))
    app.extensions["payment_metrics"] = metrics
    app.register_blueprint(blp)

    @app.before_request
    def _start_timer() -> None:
        g.metrics_started = time.perf_counter()

    @app.after_request
    def _observe(response: Response) -> Response:
        # The route template, not the path, so ids do not explode the label set.
        route = request.url_rule.rule if request.url_rule is not None else "unmatched"
        started = getattr(g, "metrics_started", None)
        metrics.requests.labels(request.method, route, str(response.status_code)).inc()
        if started is not None:
            metrics.latency.labels(request.method, route).observe(time.perf_counter() - started)
        return response
