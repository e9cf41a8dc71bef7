"""Request bodies in, wire objects out: camelCase on the wire, snake_case in Python."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from payment_service.sandbox_psp.errors import invalid_request, validation_error
from payment_service.sandbox_psp.models import CheckoutSession, Payment, Refund
from shared_contracts.money import money_errors

DEFAULT_SESSION_LIFETIME = timedelta(hours=24)
MAX_SESSION_LIFETIME = timedelta(hours=24, minutes=1)  # a minute of slack for clock skew
SESSION_FIELDS = frozenset(
    {
        "amount", "currency", "reference", "description",
        "returnUrl", "cancelUrl", "webhookUrl", "expiresAt",
    }
)  # fmt: skip
REFUND_FIELDS = frozenset({"amount", "reason"})


@dataclass(frozen=True)
class SessionRequest:
    amount: int
    currency: str
    reference: str
    description: str
    return_url: str
    cancel_url: str
    webhook_url: str
    expires_at: datetime


def require_object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise invalid_request("The request body must be a JSON object.")
    return body


def fingerprint(body: dict[str, Any]) -> str:
    """The same parameters give the same hash whatever their order (for idempotency keys)."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def parse_session_request(body: dict[str, Any], now: datetime) -> SessionRequest:
    errors = _unknown_fields(body, SESSION_FIELDS)
    errors |= money_errors(body.get("amount"), body.get("currency"))
    for name, limit in (("reference", 255), ("description", 500)):
        if problem := _text_problem(body.get(name), limit):
            errors[name] = [problem]
    for name in ("returnUrl", "cancelUrl", "webhookUrl"):
        if problem := _url_problem(body.get(name)):
            errors[name] = [problem]
    expires_at = now + DEFAULT_SESSION_LIFETIME
    if body.get("expiresAt") is not None:
        parsed = parse_timestamp(body["expiresAt"])
        if parsed is None:
            errors["expiresAt"] = ["Must be an RFC 3339 timestamp with a time zone."]
        elif not now < parsed <= now + MAX_SESSION_LIFETIME:
            errors["expiresAt"] = ["Must be in the future and at most 24 hours away."]
        else:
            expires_at = parsed.replace(microsecond=0)
    if errors:
        raise validation_error(errors)
    return SessionRequest(
        amount=body["amount"],
        currency=body["currency"],
        reference=body["reference"],
        description=body["description"],
        return_url=body["returnUrl"],
        cancel_url=body["cancelUrl"],
        webhook_url=body["webhookUrl"],
        expires_at=expires_at,
    )


def parse_refund_request(body: dict[str, Any]) -> tuple[int | None, str | None]:
    """(amount or None for "the rest", reason or None); the upper bound is checked by state."""
    errors = _unknown_fields(body, REFUND_FIELDS)
    amount, reason = body.get("amount"), body.get("reason")
    if amount is not None and (
        isinstance(amount, bool) or not isinstance(amount, int) or amount < 1
    ):
        errors["amount"] = ["Must be a positive integer in the currency's minor unit."]
    if reason is not None and (problem := _text_problem(reason, 500)):
        errors["reason"] = [problem]
    if errors:
        raise validation_error(errors)
    return amount, reason


def parse_timestamp(value: object) -> datetime | None:
    if not isinstance(value, str) or "T" not in value.upper():
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def timestamp(value: datetime) -> str:
    return value.isoformat(timespec="seconds").replace("+00:00", "Z")


def session_object(session: CheckoutSession) -> dict[str, Any]:
    last = session.payments[-1] if session.payments else None
    return {
        "id": session.id,
        "object": "session",
        "status": session.status,
        "url": session.page_url,
        "amount": session.amount,
        "currency": session.currency,
        "reference": session.reference,
        "description": session.description,
        "expiresAt": timestamp(session.expires_at),
        "paymentId": session.payment_id,
        "lastPayment": payment_object(last) if last else None,
        "createdAt": timestamp(session.created_at),
    }


def payment_object(payment: Payment) -> dict[str, Any]:
    return {
        "id": payment.id,
        "object": "payment",
        "sessionId": payment.session_id,
        "reference": payment.session.reference,
        "status": payment.status,
        "amount": payment.amount,
        "currency": payment.currency,
        "amountRefunded": payment.amount_refunded,
        "txId": payment.tx_id,
        "declineCode": payment.decline_code,
        "createdAt": timestamp(payment.created_at),
    }


def refund_object(refund: Refund) -> dict[str, Any]:
    return {
        "id": refund.id,
        "object": "refund",
        "paymentId": refund.payment_id,
        "amount": refund.amount,
        "currency": refund.currency,
        "reason": refund.reason,
        "status": refund.status,
        "createdAt": timestamp(refund.created_at),
    }


def _unknown_fields(body: dict[str, Any], known: frozenset[str]) -> dict[str, list[str]]:
    return {name: ["Unknown field."] for name in sorted(set(body) - known)}


def _text_problem(value: object, limit: int) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return "Required: a non-empty string."
    if len(value) > limit:
        return f"At most {limit} characters."
    return None


def _url_problem(value: object) -> str | None:
    if not isinstance(value, str) or not value:
        return "Required: an absolute http(s) URL."
    if len(value) > 2048:
        return "At most 2048 characters."
    try:
        parts = urlsplit(value)
    except ValueError:
        return "Must be an absolute http or https URL."
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "Must be an absolute http or https URL."
    return None
