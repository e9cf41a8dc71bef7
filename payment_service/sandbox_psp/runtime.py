"""The Sandbox object an app carries: config, store, webhook sender, and the unit of work."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from flask import current_app
from sqlalchemy.orm import Session

from payment_service.sandbox_psp.config import SandboxConfig
from payment_service.sandbox_psp.models import Switches, WebhookEvent
from payment_service.sandbox_psp.store import Store
from payment_service.sandbox_psp.webhooks import Delivery, WebhookSender

EXPIRY_SWEEP_SECONDS = 5.0
EXTENSION = "sandbox_psp"


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class UnitOfWork:
    """One transaction; webhooks emitted in it are sent only after it commits."""

    db: Session
    switches: Switches
    config: SandboxConfig
    outbox: list[tuple[Delivery, float]] = field(default_factory=list)

    def emit(self, event_type: str, obj: dict[str, Any], url: str) -> str:
        event_id = new_id("sbe")
        created = int(time.time())
        body = json.dumps(
            {"id": event_id, "type": event_type, "created": created, "data": {"object": obj}},
            separators=(",", ":"),
        )
        copies = self.switches.webhook_copies or self.config.webhook_copies
        delay_ms = self.switches.webhook_delay_ms
        delay_ms = self.config.webhook_delay_ms if delay_ms is None else delay_ms
        held = self.switches.hold_webhooks
        self.db.add(
            WebhookEvent(
                id=event_id,
                type=event_type,
                url=url,
                body=body,
                status="held" if held else "pending",
                copies=copies,
                attempts=0,
                delivered_copies=0,
                created_at=utcnow(),
            )
        )
        if not held:
            self.outbox.append((Delivery(event_id, url, body.encode(), copies), delay_ms / 1000))
        return event_id


class Sandbox:
    """Everything one sandbox app owns; ``close()`` stops the sender and the engine."""

    def __init__(self, config: SandboxConfig) -> None:
        from payment_service.sandbox_psp import services

        self.config = config
        self.store = Store(config.database_url)
        self.store.create_all()
        self.sender = WebhookSender(
            config.webhook_secret,
            self.store,
            idle_task=lambda: services.expire_due_sessions(self),
            idle_interval=EXPIRY_SWEEP_SECONDS,
        )

    @contextmanager
    def unit_of_work(self) -> Iterator[UnitOfWork]:
        with self.store.transaction() as db:
            switches = db.get(Switches, 1)
            assert switches is not None, "create_all() inserts the switches row"
            uow = UnitOfWork(db, switches, self.config)
            yield uow
        for delivery, delay in uow.outbox:
            self.sender.enqueue(delivery, delay)

    def close(self) -> None:
        self.sender.close()
        self.store.dispose()


def current_sandbox() -> Sandbox:
    sandbox: Sandbox = current_app.extensions[EXTENSION]
    return sandbox
