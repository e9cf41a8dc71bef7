"""`payment-service deliveries` and `callbacks`: the callback outbox, replays, test sends."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from payment_service.cli.shared import iso, load_settings, open_database
from shared_contracts.events import EventType


@click.group()
def deliveries() -> None:
    """Callback deliveries (the outbox): inspect and replay."""


_STATUSES = ("pending", "delivered", "rejected", "dead")


def _delivery_row(found: Any) -> dict[str, Any]:
    event, delivery = found.event, found.delivery
    return {
        "eventId": event.id,
        "type": event.type,
        "checkoutId": event.checkout_id,
        "reservationId": (event.payload.get("data") or {}).get("reservationId"),
        "status": delivery.status,
        "attempts": delivery.attempts,
        "lastStatusCode": delivery.last_status_code,
        "lastError": delivery.last_error,
        "nextAttemptAt": iso(delivery.next_attempt_at) if delivery.status == "pending" else None,
        "deliveredAt": iso(delivery.delivered_at),
        "createdAt": iso(event.created_at),
    }


@deliveries.command("list")
@click.option("--status", type=click.Choice(_STATUSES), help="Only deliveries in this state.")
@click.option("--checkout", "checkout_id", help="Only this checkout's deliveries.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def deliveries_list(status: str | None, checkout_id: str | None, limit: int, as_json: bool) -> None:
    """List callback deliveries, newest first."""
    from payment_service.callbacks.models import DeliveryStatus
    from payment_service.callbacks.operations import list_deliveries

    found = list_deliveries(
        open_database(),
        status=DeliveryStatus(status) if status else None,
        checkout_id=checkout_id,
        limit=limit,
    )
    rows = [_delivery_row(item) for item in found]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no deliveries", err=True)
        return
    header = ("EVENT", "TYPE", "CHECKOUT", "RESERVATION", "STATUS", "ATTEMPTS", "LAST",
              "NEXT ATTEMPT", "CREATED")  # fmt: skip
    table = [header, *(_cells(row) for row in rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    for line in table:
        cells = (cell.ljust(width) for cell, width in zip(line, widths, strict=True))
        click.echo("  ".join(cells).rstrip())


def _cells(row: dict[str, Any]) -> tuple[str, ...]:
    if row["lastStatusCode"] is not None:
        last = f"HTTP {row['lastStatusCode']}"
    else:
        last = str(row["lastError"] or "-")
    return (
        row["eventId"], row["type"], row["checkoutId"], row["reservationId"] or "-",
        row["status"], str(row["attempts"]), last, row["nextAttemptAt"] or "-",
        row["createdAt"] or "-",
    )  # fmt: skip


@deliveries.command("replay")
@click.argument("event_id")
@click.option("--force", is_flag=True, help="Replay a delivery that was delivered, too.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def deliveries_replay(event_id: str, force: bool, as_json: bool) -> None:
    """Send a dead or rejected event again: its delivery goes back to pending, due now, with
    the same webhook-id; its attempts are kept."""
    from payment_service.callbacks.operations import NotReplayable, UnknownEvent, replay

    try:
        replayed = replay(open_database(), event_id, force=force)
    except UnknownEvent:
        raise click.ClickException(f"no event {event_id}") from None
    except NotReplayable as exc:
        raise click.ClickException(str(exc)) from None
    row = _delivery_row(replayed.view)
    if as_json:
        click.echo(json.dumps({**row, "previousStatus": replayed.previous_status.value,
                               "changed": replayed.changed}, indent=2))  # fmt: skip
    elif replayed.changed:
        click.echo(
            f"{event_id}: {replayed.previous_status.value} -> pending, due now "
            f"(attempts so far: {row['attempts']}); a worker sends it with the same webhook-id"
        )
    else:
        click.echo(f"{event_id}: already pending (next attempt {row['nextAttemptAt']}); unchanged")


@click.group()
def callbacks() -> None:
    """Callbacks to platforms."""


@callbacks.command("send-test")
@click.option("--merchant", "merchant_id", required=True, help="The merchant whose secrets sign.")
@click.option("--url", required=True, help="The receiver; must be on the merchant's allowlist.")
@click.option("--type", "event_type", default="ticket_payment.paid", show_default=True,
              type=click.Choice([t.value for t in EventType]))  # fmt: skip
@click.option("--timeout", default=15.0, show_default=True, type=click.FloatRange(0.1, 60))
def callbacks_send_test(merchant_id: str, url: str, event_type: str, timeout: float) -> None:
    """Send a signed sample event to URL now, as the worker would; exit 0 on a 2xx answer.

    The body has every data field of its type with sample values and a fresh evt_test_ id;
    nothing is stored and nothing is retried."""
    from payment_service.callbacks.operations import SendTestRefused, send_test

    settings = load_settings()
    try:
        sent = send_test(
            open_database(), merchant_id, url, EventType(event_type),
            allow_private=settings.allow_private_callbacks, timeout=timeout,
        )  # fmt: skip
    except SendTestRefused as exc:
        raise click.ClickException(str(exc)) from None
    result = sent.result
    answer = f"HTTP {result.status_code}" if result.status_code is not None else result.error
    click.echo(f"sent {event_type} {sent.event_id} to {url}")
    click.echo(f"answer: {answer} in {result.duration_ms} ms")
    if result.response_excerpt:
        excerpt = result.response_excerpt[:500]
        click.echo(f"body: {excerpt}{'…' if len(result.response_excerpt) > 500 else ''}")
    if not sent.ok:
        sys.exit(1)
