"""Callback delivery metrics, read from the database at scrape time.

The outbox is the truth and any number of workers write it, so these are not counters kept in
one process: every scrape of the API's /metrics asks the database. All are gauges:

- ``callback_deliveries{status}``: deliveries by status (pending, delivered, rejected, dead).
- ``callback_queue_depth``: pending deliveries due now (including ones being attempted).
- ``callback_oldest_due_age_seconds``: how long the oldest due pending delivery has waited
  (0 when none is due): the one to alert on.
- ``callback_recent_attempts``: attempts started in the last 5 minutes.
- ``callback_recent_attempt_duration_seconds_sum``: their total duration.
- ``callback_attempt_duration_seconds{quantile}``: the 0.5, 0.99 and 1 quantiles of those
  attempts' durations (absent when there were none). They describe a sliding 5-minute window,
  not everything since start: use them as they are, never with rate().

A scrape while the database is down logs a warning and leaves these out; the process metrics
still answer.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import structlog
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, literal_column, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.sql.elements import ColumnElement

from payment_service.callbacks.models import Delivery, DeliveryAttempt, DeliveryStatus
from payment_service.db import Database, utcnow

log = structlog.get_logger(__name__)

RECENT = timedelta(minutes=5)
QUANTILES = (0.5, 0.99, 1.0)
# A literal, so that SQLite can use the partial index on pending deliveries.
_PENDING: ColumnElement[str] = literal_column("'pending'")


class DeliveryCollector(Collector):
    def __init__(self, db: Database) -> None:
        self.db = db

    def describe(self) -> list[Metric]:
        return []  # nothing at registration: describing must not query the database

    def collect(self) -> Iterator[Metric]:
        try:
            families = self._read(utcnow())
        except (SQLAlchemyError, OSError) as exc:
            log.warning("metrics.callbacks_unavailable", error=type(exc).__name__)
            return
        except Exception:  # a bug here must not take the other metrics down with it
            log.exception("metrics.callbacks_failed")
            return
        yield from families

    def _read(self, now: datetime) -> list[Metric]:
        with self.db.transaction() as session:
            counted = session.execute(
                select(Delivery.status, func.count()).group_by(Delivery.status)
            ).all()
            by_status: dict[str, int] = {str(status): count for status, count in counted}
            depth, oldest = session.execute(
                select(func.count(), func.min(Delivery.next_attempt_at)).where(
                    Delivery.status == _PENDING, Delivery.next_attempt_at <= now
                )
            ).one()
            recent = DeliveryAttempt.started_at >= now - RECENT
            count, total_ms = session.execute(
                select(func.count(), func.coalesce(func.sum(DeliveryAttempt.duration_ms), 0))
                .where(recent)
            ).one()  # fmt: skip
            quantiles: list[tuple[float, int]] = []
            for q in QUANTILES if count else ():
                # The nearest-rank quantile, read by offset: no row is fetched but that one.
                rank = max(0, min(count - 1, int(q * count + 0.999999) - 1))
                value = session.scalar(
                    select(DeliveryAttempt.duration_ms)
                    .where(recent)
                    .order_by(DeliveryAttempt.duration_ms)
                    .offset(rank)
                    .limit(1)
                )
                quantiles.append((q, int(value or 0)))

        deliveries = GaugeMetricFamily(
            "callback_deliveries", "Callback deliveries by status.", labels=["status"]
        )
        for status in DeliveryStatus:
            deliveries.add_metric([status.value], by_status.get(status.value, 0))
        queue = GaugeMetricFamily(
            "callback_queue_depth", "Pending callback deliveries that are due now.", value=depth
        )
        age = 0.0
        if oldest is not None:
            age = max(0.0, (now - _aware(oldest)).total_seconds())
        oldest_age = GaugeMetricFamily(
            "callback_oldest_due_age_seconds",
            "How long the oldest due pending callback delivery has waited.",
            value=age,
        )
        attempts = GaugeMetricFamily(
            "callback_recent_attempts", "Callback attempts started in the last 5 minutes.",
            value=count,
        )  # fmt: skip
        duration_sum = GaugeMetricFamily(
            "callback_recent_attempt_duration_seconds_sum",
            "Total duration of the callback attempts started in the last 5 minutes.",
            value=total_ms / 1000,
        )
        duration = GaugeMetricFamily(
            "callback_attempt_duration_seconds",
            "Quantiles of the duration of callback attempts started in the last 5 minutes.",
            labels=["quantile"],
        )
        for q, value_ms in quantiles:
            duration.add_metric([f"{q:g}"], value_ms / 1000)
        return [deliveries, queue, oldest_age, attempts, duration_sum, duration]


def _aware(value: datetime) -> datetime:
    # An aggregate bypasses the column type on SQLite: the value may come back naive or as text.
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=utcnow().tzinfo)
