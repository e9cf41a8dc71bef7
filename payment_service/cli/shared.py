"""What every `payment-service` command uses: settings, the database, output helpers."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import click

from payment_service.settings import Settings


def load_settings() -> Settings:
    return Settings.from_env()


def iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def open_database() -> Any:
    from payment_service.db import Database
    from payment_service.logging import configure_logging

    settings = load_settings()
    configure_logging(settings.log_format, "WARNING")
    return Database(settings.database_url)


def emit(payload: dict[str, Any], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(payload, indent=2))
    else:
        for key, value in payload.items():
            click.echo(f"{key}: {value}")
