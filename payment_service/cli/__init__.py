"""The `payment-service` command: migrations, merchants, the HTTP server and operator tools."""

from __future__ import annotations

import sys

import click

from payment_service.cli.merchants import merchants
from payment_service.cli.operations import idempotency, refunds
from payment_service.cli.outbox import callbacks, deliveries
from payment_service.cli.shared import load_settings
from payment_service.settings import ConfigError


@click.group()
def cli() -> None:
    """Operate the ticket payment service (configuration comes from PAYMENT_* variables)."""


for _group in (merchants, refunds, idempotency, deliveries, callbacks):
    cli.add_command(_group)


@cli.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Apply Alembic migrations to PAYMENT_DATABASE_URL."""
    from payment_service.logging import configure_logging
    from payment_service.migrate import upgrade

    settings = load_settings()
    configure_logging(settings.log_format, "WARNING")
    upgrade(settings.database_url, revision)
    click.echo(f"database at revision {revision}", err=True)


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64))
@click.option("--threads", default=4, show_default=True, type=click.IntRange(1, 64))
def serve(host: str, port: int, workers: int, threads: int) -> None:
    """Serve the HTTP API and hosted pages with gunicorn."""
    from payment_service.server import run_gunicorn

    settings = load_settings()
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
    settings = load_settings()
    configure_logging(settings.log_format, settings.log_level)
    runner = Worker(
        Database(settings.database_url),
        build_registry(settings),
        sweep_every=sweep_every,
        settings=settings,
    )
    runner.install_signal_handlers()
    runner.run_forever()


def main() -> None:
    """Entry point: a configuration error is one readable line and exit code 2; a database
    that cannot be reached (or used) one line and exit code 3, not two chained tracebacks."""
    from sqlalchemy.exc import OperationalError

    try:
        cli.main(prog_name="payment-service", standalone_mode=True)
    except ConfigError as exc:
        click.echo(f"payment-service: configuration error: {exc}", err=True)
        sys.exit(2)
    except OperationalError as exc:
        # The driver's own first line ("connection ... failed: Connection refused", "database
        # is locked"): it names the server, never the password. Bound values are hidden.
        reason = (str(exc.orig or exc).strip().splitlines() or [""])[0]
        click.echo(f"payment-service: database unavailable: {reason}", err=True)
        sys.exit(3)
