"""`payment-service refunds` and `idempotency`: what operators check and clean up."""

from __future__ import annotations

import json

import click

from payment_service.cli.shared import iso, open_database


@click.group()
def refunds() -> None:
    """Refunds of payments whose platform refused the ticket."""


@refunds.command("list")
@click.option("--status", type=click.Choice(["requested", "succeeded", "failed"]),
              help="failed: the provider refused, a person must act; requested: still retrying.")  # fmt: skip
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def refunds_list(status: str | None, limit: int, as_json: bool) -> None:
    """List refunds, newest first, with their failed provider calls and last error.

    `attempts` counts the provider calls that failed (a refund done at the first call shows 0)."""
    from payment_service.payments.models import RefundStatus
    from payment_service.payments.refunds import list_refunds

    rows = [
        {
            "refundId": r.id, "checkoutId": r.checkout_id, "paymentId": r.payment_id,
            "merchantId": r.merchant_id, "amount": r.amount, "currency": r.currency,
            "status": str(r.status), "attempts": r.attempts, "reason": r.reason,
            "lastError": r.last_error, "nextAttemptAt": iso(r.next_attempt_at),
            "createdAt": iso(r.created_at),
        }
        for r in list_refunds(open_database(), status=RefundStatus(status) if status else None, limit=limit)
    ]  # fmt: skip
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no refunds", err=True)
    for row in rows:
        click.echo(
            f"{row['refundId']}  {row['status']:<9}  {row['checkoutId']}  {row['amount']} {row['currency']}"
            f"  failed_calls={row['attempts']}  {row['lastError'] or ''}".rstrip()
        )


@click.group()
def idempotency() -> None:
    """Idempotency keys."""


@idempotency.command("purge")
def idempotency_purge() -> None:
    """Delete idempotency records older than 24 hours (the worker does this on a timer)."""
    from payment_service.idempotency.services import purge_expired

    click.echo(f"purged {purge_expired(open_database())} idempotency records")
