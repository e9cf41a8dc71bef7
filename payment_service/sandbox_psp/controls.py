"""Test switches (``/api/test/...``): outages, webhook copies, delays, holds and forced outcomes."""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Flask, Response, jsonify
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from payment_service.sandbox_psp.api import authenticate, json_body
from payment_service.sandbox_psp.config import MAX_WEBHOOK_COPIES, MAX_WEBHOOK_DELAY_MS
from payment_service.sandbox_psp.errors import validation_error
from payment_service.sandbox_psp.models import Switches, WebhookEvent
from payment_service.sandbox_psp.runtime import Sandbox, current_sandbox
from payment_service.sandbox_psp.schemas import timestamp
from payment_service.sandbox_psp.services import OUTCOMES
from payment_service.sandbox_psp.webhooks import Delivery

bp = Blueprint("sandbox_controls", __name__, url_prefix="/api/test")
MAX_NEXT_OUTCOMES = 100


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)


bp.before_request(authenticate)  # /api/test/* answers even while the sandbox is "down"


@bp.get("/config")
def get_config() -> Response:
    sandbox = current_sandbox()
    with sandbox.store.transaction() as db:
        return jsonify(_switches_object(sandbox, db))


@bp.post("/config")
def update_config() -> Response:
    body = json_body()
    _validate_switches(body)
    sandbox = current_sandbox()
    with sandbox.store.transaction() as db:
        switches = db.get(Switches, 1, with_for_update=True)
        assert switches is not None
        if body.get("reset"):
            switches.webhook_copies = switches.webhook_delay_ms = None
            switches.hold_webhooks = switches.down = False
            switches.next_outcomes = "[]"
        if "webhookCopies" in body:
            switches.webhook_copies = body["webhookCopies"]
        if "webhookDelayMs" in body:
            switches.webhook_delay_ms = body["webhookDelayMs"]
        if "holdWebhooks" in body:
            switches.hold_webhooks = body["holdWebhooks"]
        if "down" in body:
            switches.down = body["down"]
        if "nextOutcomes" in body:
            switches.next_outcomes = json.dumps(body["nextOutcomes"])
        db.flush()
        return jsonify(_switches_object(sandbox, db))


@bp.post("/release-webhooks")
def release_webhooks() -> Response:
    """Send every held event now, oldest first (``fifo``) or newest first (``reverse``)."""
    order = json_body(optional=True).get("order", "fifo")
    if order not in ("fifo", "reverse"):
        raise validation_error({"order": ["Must be 'fifo' or 'reverse'."]})
    sandbox = current_sandbox()
    with sandbox.store.transaction() as db:
        sequence = WebhookEvent.seq.desc() if order == "reverse" else WebhookEvent.seq.asc()
        held = db.scalars(
            select(WebhookEvent)
            .where(WebhookEvent.status == "held")
            .order_by(sequence)
            .with_for_update()
        ).all()
        for event in held:
            event.status = "pending"
        deliveries = [Delivery(e.id, e.url, e.body.encode(), e.copies) for e in held]
    for delivery in deliveries:  # one sender thread sends them in exactly this order
        sandbox.sender.enqueue(delivery)
    return jsonify({"order": order, "released": [d.event_id for d in deliveries]})


@bp.get("/events")
def list_events() -> Response:
    """The last 100 webhook events, newest first, with their delivery state."""
    with current_sandbox().store.transaction() as db:
        events = db.scalars(select(WebhookEvent).order_by(WebhookEvent.seq.desc()).limit(100))
        return jsonify({"data": [_event_object(event) for event in events]})


def _switches_object(sandbox: Sandbox, db: Session) -> dict[str, Any]:
    switches = db.get(Switches, 1)
    assert switches is not None
    held = db.scalar(
        select(func.count()).select_from(WebhookEvent).where(WebhookEvent.status == "held")
    )
    delay = switches.webhook_delay_ms
    return {
        "webhookCopies": switches.webhook_copies or sandbox.config.webhook_copies,
        "webhookDelayMs": sandbox.config.webhook_delay_ms if delay is None else delay,
        "holdWebhooks": switches.hold_webhooks,
        "down": switches.down,
        "nextOutcomes": json.loads(switches.next_outcomes or "[]"),
        "heldWebhooks": held,
    }


def _event_object(event: WebhookEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "type": event.type,
        "status": event.status,
        "url": event.url,
        "copies": event.copies,
        "attempts": event.attempts,
        "deliveredCopies": event.delivered_copies,
        "lastError": event.last_error,
        "createdAt": timestamp(event.created_at),
    }


def _validate_switches(body: dict[str, Any]) -> None:
    errors: dict[str, list[str]] = {}
    ranges = {"webhookCopies": (1, MAX_WEBHOOK_COPIES), "webhookDelayMs": (0, MAX_WEBHOOK_DELAY_MS)}
    for name, value in body.items():
        if name in ranges:
            low, high = ranges[name]
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                errors[name] = [f"Must be an integer from {low} to {high}."]
        elif name in ("holdWebhooks", "down", "reset"):
            if not isinstance(value, bool):
                errors[name] = ["Must be true or false."]
        elif name == "nextOutcomes":
            if not isinstance(value, list) or len(value) > MAX_NEXT_OUTCOMES:
                errors[name] = [f"Must be a list of at most {MAX_NEXT_OUTCOMES} outcomes."]
            elif any(outcome not in OUTCOMES for outcome in value):
                errors[name] = [f"Each outcome must be one of: {', '.join(OUTCOMES)}."]
        else:
            errors[name] = ["Unknown field."]
    if errors:
        raise validation_error(errors)
