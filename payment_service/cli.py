"""The `payment-service` command: migrations, merchants, the HTTP server and operator tools."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from payment_service.settings import ConfigError, Settings
from shared_contracts.events import EventType


def _settings() -> Settings:
    return Settings.from_env()


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


@click.group()
def cli() -> None:
    """Operate the ticket payment service (configuration comes from PAYMENT_* variables)."""


@cli.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Apply Alembic migrations to PAYMENT_DATABASE_URL."""
    from payment_service.logging import configure_logging
    from payment_service.migrate import upgrade

    settings = _settings()
    configure_logging(settings.log_format, "WARNING")
    upgrade(settings.database_url, revision)
    click.echo(f"database at revision {revision}", err=True)


@cli.group()
def merchants() -> None:
    """Merchants (platform tenants)."""


@merchants.command("create")
@click.option("--name", required=True)
@click.option("--callback-origin", "callback_origins", multiple=True, required=True)
@click.option("--redirect-origin", "redirect_origins", multiple=True, required=True)
@click.option("--allow-http", is_flag=True, help="Allow http:// origins (development only).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def merchants_create(
    name: str,
    callback_origins: tuple[str, ...],
    redirect_origins: tuple[str, ...],
    allow_http: bool,
    as_json: bool,
) -> None:
    """Create a merchant; its API key and signing secret are shown only this once."""
    from payment_service.merchants.services import create_merchant

    database = _database()
    try:
        created = create_merchant(
            database,
            name=name,
            callback_origins=callback_origins,
            redirect_origins=redirect_origins,
            allow_http=allow_http,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    payload = {
        "merchantId": created.merchant_id,
        "apiKey": created.api_key,
        "signingSecret": created.signing_secret,
    }
    _emit(payload, as_json)


@merchants.command("list")
@click.option("--json", "as_json", is_flag=True)
def merchants_list(as_json: bool) -> None:
    """List merchants (never their keys or secrets)."""
    from payment_service.merchants.services import list_merchants

    rows = [
        {
            "merchantId": m.id,
            "name": m.name,
            "callbackOrigins": m.callback_origins,
            "redirectOrigins": m.redirect_origins,
            "allowHttp": m.allow_http,
            "createdAt": _iso(m.created_at),
        }
        for m in list_merchants(_database())
    ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    else:
        for row in rows:
            click.echo(
                f"{row['merchantId']}  {row['name']}  callbacks={','.join(row['callbackOrigins'])}"
            )


@merchants.command("rotate-secret")
@click.argument("merchant_id")
@click.option("--grace-hours", default=24, show_default=True, type=click.IntRange(0, 24 * 30))
@click.option("--json", "as_json", is_flag=True)
def merchants_rotate_secret(merchant_id: str, grace_hours: int, as_json: bool) -> None:
    """Add a new signing secret; the old one keeps signing for the grace period."""
    from datetime import timedelta

    from payment_service.merchants.services import rotate_secret

    try:
        new_secret, active = rotate_secret(
            _database(), merchant_id, grace=timedelta(hours=grace_hours)
        )
    except LookupError as exc:
        raise click.ClickException(str(exc)) from None
    payload = {
        "merchantId": merchant_id,
        "signingSecret": new_secret,
        "activeSecrets": [{"secret": s, "expiresAt": _iso(exp)} for s, exp in active],
    }
    _emit(payload, as_json)


@merchants.command("ensure-dev")
@click.option(
    "--file", "path", type=click.Path(path_type=Path), default=Path("var/dev-merchant.json")
)
@click.option("--origin", "origins", multiple=True, default=("http://127.0.0.1:8001",))
def merchants_ensure_dev(path: Path, origins: tuple[str, ...]) -> None:
    """Create the local development merchant once and keep its credentials in FILE."""
    from payment_service.merchants.services import create_merchant, get_merchant

    database = _database()
    if path.exists():
        saved = json.loads(path.read_text())
        if get_merchant(database, saved["merchantId"]) is not None:
            click.echo(json.dumps(saved, indent=2))
            return
    created = create_merchant(
        database, name="Local development platform", callback_origins=origins,
        redirect_origins=origins, allow_http=True,
    )  # fmt: skip
    saved = {
        "merchantId": created.merchant_id,
        "apiKey": created.api_key,
        "signingSecret": created.signing_secret,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(saved, indent=2) + "\n")
    path.chmod(0o600)
    click.echo(json.dumps(saved, indent=2))


@cli.group()
def refunds() -> None:
    """Refunds of payments whose platform refused the ticket."""


@refunds.command("list")
@click.option("--status", type=click.Choice(["requested", "succeeded", "failed"]),
              help="failed: the provider refused, a person must act; requested: still retrying.")  # fmt: skip
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def refunds_list(status: str | None, limit: int, as_json: bool) -> None:
    """List refunds, newest first, with their provider attempts and last error."""
    from payment_service.payments.models import RefundStatus
    from payment_service.payments.refunds import list_refunds

    rows = [
        {
            "refundId": r.id, "checkoutId": r.checkout_id, "paymentId": r.payment_id,
            "merchantId": r.merchant_id, "amount": r.amount, "currency": r.currency,
            "status": str(r.status), "attempts": r.attempts, "reason": r.reason,
            "lastError": r.last_error, "nextAttemptAt": _iso(r.next_attempt_at),
            "createdAt": _iso(r.created_at),
        }
        for r in list_refunds(_database(), status=RefundStatus(status) if status else None, limit=limit)
    ]  # fmt: skip
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no refunds", err=True)
    for row in rows:
        click.echo(
            f"{row['refundId']}  {row['status']:<9}  {row['checkoutId']}  {row['amount']} {row['currency']}"
            f"  attempts={row['attempts']}  {row['lastError'] or ''}".rstrip()
        )


@cli.group()
def idempotency() -> None:
    """Idempotency keys."""


@idempotency.command("purge")
def idempotency_purge() -> None:
    """Delete idempotency records older than 24 hours (the worker does this on a timer)."""
    from payment_service.idempotency.services import purge_expired

    click.echo(f"purged {purge_expired(_database())} idempotency records")


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64))
@click.option("--threads", default=4, show_default=True, type=click.IntRange(1, 64))
def serve(host: str, port: int, workers: int, threads: int) -> None:
    """Serve the HTTP API and hosted pages with gunicorn."""
    from payment_service.server import run_gunicorn

    settings = _settings()
    run_gunicorn(settings, bind=f"{host}:{port}", workers=workers, threads=threads)


@cli.command()
@click.option("--sweep-every", default=1.0, show_default=True, type=click.FloatRange(0.05, 3600),
              help="Seconds between expiry sweeps.")  # fmt: skip
def worker(sweep_every: float) -> None:
    """Run the background jobs: deliver callbacks, expire overdue checkouts, purge old
    idempotency keys.

    Any number of workers may run against one database; SIGTERM stops one cleanly."""
    from payment_service import build_registry
    from payment_service.db import Database
    from payment_service.logging import configure_logging
    from payment_service.models import import_all_models
    from payment_service.worker import Worker

    import_all_models()  # the ORM resolves callback_events' foreign key to merchants at flush
    settings = _settings()
    configure_logging(settings.log_format, settings.log_level)
    runner = Worker(
        Database(settings.database_url),
        build_registry(settings),
        sweep_every=sweep_every,
        settings=settings,
    )
    runner.install_signal_handlers()
    runner.run_forever()


@cli.group()
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
        "nextAttemptAt": _iso(delivery.next_attempt_at) if delivery.status == "pending" else None,
        "deliveredAt": _iso(delivery.delivered_at),
        "createdAt": _iso(event.created_at),
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
        _database(),
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
        replayed = replay(_database(), event_id, force=force)
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


@cli.group()
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

    settings = _settings()
    try:
        sent = send_test(
            _database(), merchant_id, url, EventType(event_type),
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


def _database() -> Any:
    from payment_service.db import Database
    from payment_service.logging import configure_logging

    settings = _settings()
    configure_logging(settings.log_format, "WARNING")
    return Database(settings.database_url)


def _emit(payload: dict[str, Any], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(payload, indent=2))
    else:
        for key, value in payload.items():
            click.echo(f"{key}: {value}")


def main() -> None:
    """Entry point: a configuration error is one readable line and exit code 2."""
    try:
        cli.main(prog_name="payment-service", standalone_mode=True)
    except ConfigError as exc:
        click.echo(f"payment-service: configuration error: {exc}", err=True)
        sys.exit(2)
