"""Callback metrics on /metrics: computed from the database at scrape time."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import update

from payment_service import close_app, create_app
from payment_service.callbacks.models import Delivery
from payment_service.db import utcnow
from tests.integration.callbacks.conftest import Reply, add_checkout, add_event
from tests.integration.operations.helpers import deliver_due, force_status


def scrape(client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    samples = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def by_status(samples) -> dict[str, float]:
    return {
        dict(labels)["status"]: value
        for (name, labels), value in samples.items()
        if name == "callback_deliveries"
    }


def test_metrics_follow_the_deliveries(client, db, receiver, platform):
    empty = scrape(client)
    assert by_status(empty) == {"pending": 0, "delivered": 0, "rejected": 0, "dead": 0}
    assert empty[("callback_queue_depth", ())] == 0
    assert empty[("callback_oldest_due_age_seconds", ())] == 0
    assert empty[("callback_recent_attempts", ())] == 0
    assert not any(name == "callback_attempt_duration_seconds" for name, _ in empty)

    first = add_event(db, add_checkout(db, platform.merchant_id, receiver.url()))
    add_event(db, add_checkout(db, platform.merchant_id, receiver.url()))
    third = add_event(db, add_checkout(db, platform.merchant_id, receiver.url()))
    with db.transaction() as session:  # the oldest has waited a minute
        session.execute(
            update(Delivery)
            .where(Delivery.id == _delivery_id(db, first))
            .values(next_attempt_at=utcnow() - timedelta(seconds=60))
        )
    queued = scrape(client)
    assert by_status(queued)["pending"] == 3
    assert queued[("callback_queue_depth", ())] == 3
    assert 59 <= queued[("callback_oldest_due_age_seconds", ())] < 120

    receiver.script(Reply(200, delay=0.05), Reply(410, b'{"error":{"code":"gone"}}'), Reply(503))
    deliver_due(db)
    retrying = scrape(client)
    assert by_status(retrying) == {"pending": 1, "delivered": 1, "rejected": 1, "dead": 0}
    assert retrying[("callback_queue_depth", ())] == 0  # the 503 one is due in ~1 s, not now
    force_status(db, third, "dead")
    after = scrape(client)
    assert by_status(after) == {"pending": 0, "delivered": 1, "rejected": 1, "dead": 1}
    assert after[("callback_queue_depth", ())] == 0
    assert after[("callback_oldest_due_age_seconds", ())] == 0
    assert after[("callback_recent_attempts", ())] == 3
    total = after[("callback_recent_attempt_duration_seconds_sum", ())]
    assert total >= 0.05
    quantiles = {
        dict(labels)["quantile"]: value
        for (name, labels), value in after.items()
        if name == "callback_attempt_duration_seconds"
    }
    assert set(quantiles) == {"0.5", "0.99", "1"}
    assert quantiles["0.5"] <= quantiles["0.99"] <= quantiles["1"] <= total
    assert quantiles["1"] >= 0.05


def _delivery_id(db, event_id: str) -> int:
    from tests.integration.callbacks.helpers import delivery_of

    return delivery_of(db, event_id).id


def test_a_scrape_without_a_database_still_answers(settings, db):
    app = create_app(replace(settings, database_url="postgresql+psycopg://nobody@127.0.0.1:1/none"))
    try:
        client = app.test_client()
        client.get("/healthz")
        samples = scrape(client)
    finally:
        close_app(app)
    assert any(name == "http_requests_total" for name, _ in samples)
    assert not any(name.startswith("callback_") for name, _ in samples)
