"""`python -m platform_client.demo`: serve the reference platform, create its tables, sweep."""

from __future__ import annotations

import logging
import sys
import time

import click

from platform_client.demo.settings import ConfigError, DemoSettings


@click.group()
def cli() -> None:
    """The reference event platform (configuration comes from PLATFORM_* variables)."""


@cli.command("init-db")
def init_db() -> None:
    """Create the ledger's tables if missing and seed the demo event into an empty database."""
    from platform_client.demo.app import initialise
    from platform_client.ledger import ledger_engine

    engine = ledger_engine(DemoSettings.from_env().database_url)
    try:
        seeded = initialise(engine)
    finally:
        engine.dispose()
    click.echo(
        "seeded the demo event" if seeded else "tables ready; events already there", err=True
    )


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8001, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64))
@click.option("--threads", default=8, show_default=True, type=click.IntRange(1, 64))
@click.option("--sweep-every", default=5.0, show_default=True, type=click.FloatRange(0, 3600),
              help="Seconds between releases of expired holds in each worker; 0: none.")  # fmt: skip
def serve(host: str, port: int, workers: int, threads: int, sweep_every: float) -> None:
    """Serve the platform with gunicorn (tables and seed data are made first, once)."""
    from platform_client.demo.app import initialise
    from platform_client.demo.server import run_gunicorn
    from platform_client.ledger import ledger_engine

    settings = DemoSettings.from_env()
    engine = ledger_engine(settings.database_url)
    try:
        initialise(engine)
    finally:
        engine.dispose()  # no connection may cross the fork into the workers
    run_gunicorn(
        settings,
        bind=f"{host}:{port}",
        workers=workers,
        threads=threads,
        sweep_every=sweep_every,
    )


@cli.command()
@click.option("--every", type=click.FloatRange(0.1, 3600), default=None,
              help="Keep sweeping every N seconds until stopped; without it, sweep once.")  # fmt: skip
def sweep(every: float | None) -> None:
    """Release holds past their TTL (the callback for them may never come)."""
    from platform_client.demo.app import close_app, create_app
    from platform_client.demo.state import demo_of
    from platform_client.demo.sweeper import Sweeper

    app = create_app(DemoSettings.from_env(), init_db=False)
    sweeper = Sweeper(demo_of(app).ledger, every=every or 1)
    try:
        if every is None:
            click.echo(f"released {sweeper.sweep_once()} holds")
            return
        while True:
            sweeper.sweep_once()
            time.sleep(every)
    except KeyboardInterrupt:
        pass
    finally:
        close_app(app)


_RECORD_FIELDS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class KeyValueFormatter(logging.Formatter):
    """The message, then the record's ``extra`` fields (the ledger logs reservation_id and
    checkout_id that way) as key=value, so one grep follows a reservation."""

    def format(self, record: logging.LogRecord) -> str:
        extra = {k: v for k, v in vars(record).items() if k not in _RECORD_FIELDS}
        return super().format(record) + "".join(f" {k}={v}" for k, v in extra.items())


def main() -> None:
    """Entry point: a configuration error is one readable line and exit code 2."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(KeyValueFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    try:
        cli.main(prog_name="python -m platform_client.demo", standalone_mode=True)
    except ConfigError as exc:
        click.echo(f"platform-demo: configuration error: {exc}", err=True)
        sys.exit(2)
