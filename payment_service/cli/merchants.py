"""`payment-service merchants`: create, list, rotate secrets, the local development merchant."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from payment_service.cli.shared import emit, iso, open_database


@click.group()
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

    database = open_database()
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
    emit(payload, as_json)


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
            "createdAt": iso(m.created_at),
        }
        for m in list_merchants(open_database())
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
            open_database(), merchant_id, grace=timedelta(hours=grace_hours)
        )
    except LookupError as exc:
        raise click.ClickException(str(exc)) from None
    payload = {
        "merchantId": merchant_id,
        "signingSecret": new_secret,
        "activeSecrets": [{"secret": s, "expiresAt": iso(exp)} for s, exp in active],
    }
    emit(payload, as_json)


@merchants.command("ensure-dev")
@click.option(
    "--file", "path", type=click.Path(path_type=Path), default=Path("var/dev-merchant.json")
)
@click.option("--origin", "origins", multiple=True, default=("http://127.0.0.1:8001",))
def merchants_ensure_dev(path: Path, origins: tuple[str, ...]) -> None:
    """Create the local development merchant once and keep its credentials in FILE."""
    from payment_service.merchants.services import create_merchant, get_merchant

    database = open_database()
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
    # Owner-only before the first byte: a new file is created 0600, an old one is changed
    # first (O_CREAT keeps an existing file's mode).
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(json.dumps(saved, indent=2) + "\n")
    click.echo(json.dumps(saved, indent=2))
