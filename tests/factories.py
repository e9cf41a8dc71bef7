"""Builders for test data: merchants with credentials, and checkout payloads."""

from __future__ import annotations

from dataclasses import dataclass

from payment_service.db import Database
from payment_service.merchants.services import create_merchant

PLATFORM_ORIGIN = "https://platform.example"


@dataclass(frozen=True)
class MerchantCredentials:
    merchant_id: str
    api_key: str
    signing_secret: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}


def make_merchant(
    db: Database,
    *,
    name: str = "Seoul Marathon",
    origins: tuple[str, ...] = (PLATFORM_ORIGIN,),
    allow_http: bool = False,
) -> MerchantCredentials:
    created = create_merchant(
        db, name=name, callback_origins=origins, redirect_origins=origins, allow_http=allow_http
    )
    return MerchantCredentials(created.merchant_id, created.api_key, created.signing_secret)


def checkout_payload(reservation_id: str = "res_123", **overrides: object) -> dict[str, object]:
    """A valid POST /v1/ticket-checkouts body; keyword arguments replace wire fields."""
    payload: dict[str, object] = {
        "reservationId": reservation_id,
        "eventId": "evt_42",
        "tierId": "tier_7",
        "orderName": "Seoul Marathon 2027 - Full course",
        "amount": 30000,
        "currency": "KRW",
        "customer": {
            "platformUserId": "u_9",
            "name": "Kim",
            "email": "kim@example.com",
            "phone": "+82 10 1234 5678",
        },
        "successUrl": f"{PLATFORM_ORIGIN}/events/evt_42/register?payment=success",
        "cancelUrl": f"{PLATFORM_ORIGIN}/events/evt_42/register?payment=cancel",
        "callbackUrl": f"{PLATFORM_ORIGIN}/hooks/ticket-payments",
    }
    payload.update(overrides)
    return payload


def public_resolver(host: str, port: int, **_: object) -> list[tuple[object, ...]]:
    """A DNS stand-in: every name is public, except *.internal-rebind.example (private)."""
    import socket

    address = "10.0.0.7" if host.endswith("internal-rebind.example") else "93.184.216.34"
    return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]


def sandbox_payment_webhook(
    checkout_id: str,
    *,
    status: str = "succeeded",
    payment_id: str | None = None,
    event_id: str | None = None,
    amount: int = 30000,
    currency: str = "KRW",
    occurred_at: str | None = None,
    secret: str = "sbx_whsec_dev",
    signed_at: int | None = None,
) -> tuple[bytes, dict[str, str]]:
    """A sandbox PSP payment webhook exactly as the sandbox signs it: (raw body, headers)."""
    import json
    import secrets
    import time
    from datetime import UTC, datetime

    from payment_service.sandbox_psp.signature import HEADER, sign_webhook

    payment_id = payment_id or "sbp_" + secrets.token_hex(8)
    body = json.dumps({
        "id": event_id or "sbe_" + secrets.token_hex(8),
        "type": f"payment.{status}",
        "created": int(time.time()),
        "data": {"object": {
            "id": payment_id, "object": "payment", "sessionId": "sbs_test", "reference": checkout_id,
            "status": status, "amount": amount, "currency": currency, "amountRefunded": 0,
            "txId": "sbtx_" + payment_id[4:] if status == "succeeded" else None,
            "declineCode": None if status == "succeeded" else "card_declined",
            "createdAt": occurred_at or datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        }},
    }).encode()  # fmt: skip
    signed_at = int(time.time()) if signed_at is None else signed_at
    return body, {HEADER: sign_webhook(secret, signed_at, body), "Content-Type": "application/json"}
