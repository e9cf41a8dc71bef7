"""Builders for signed callbacks, as the payment service sends them."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from shared_contracts.events import EventType, encode_body, event_body
from shared_contracts.signing import generate_secret, webhook_headers

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # the Standard Webhooks test vector's secret
OLD_SECRET = generate_secret()

_COMMON = {
    "checkoutId": "chk_1", "reservationId": "res_123", "eventId": "evt_42", "tierId": "tier_7",
    "amount": 30000, "currency": "KRW", "metadata": {"seat": "A1"},
}  # fmt: skip
DATA: Mapping[EventType, dict[str, object]] = {
    EventType.PAID: {**_COMMON, "paymentId": "pay_1", "provider": "sandbox", "txId": "tx_1",
                     "paidAt": "2026-11-22T10:03:12Z"},
    EventType.FAILED: {**_COMMON, "attempt": 1, "maxAttempts": 3, "reason": "card_declined"},
    EventType.EXPIRED: dict(_COMMON),
    EventType.CANCELED: dict(_COMMON),
    EventType.REFUNDED: {**_COMMON, "paymentId": "pay_1", "refundId": "rf_1", "reason": "rejected"},
}  # fmt: skip


def callback_body(type: EventType = EventType.PAID, **data: object) -> bytes:
    return encode_body(
        event_body(type, {**DATA[type], **data}, datetime(2026, 11, 22, 10, 3, 12, tzinfo=UTC))
    )


def signed(
    body: bytes,
    secrets: Sequence[str] = (SECRET,),
    msg_id: str = "evt_abc",
    timestamp: int | None = None,
) -> dict[str, str]:
    return webhook_headers(
        secrets, msg_id, body, timestamp=timestamp or int(time.time()), request_id="req_1"
    )
