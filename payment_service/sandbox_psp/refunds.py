"""Payments as the API reads them, and refunds (partial, full, idempotent)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from payment_service.sandbox_psp import schemas
from payment_service.sandbox_psp.errors import idempotency_error, invalid_state
from payment_service.sandbox_psp.models import Refund
from payment_service.sandbox_psp.runtime import Sandbox, new_id, utcnow
from payment_service.sandbox_psp.services import KEY_REUSED, find_payment
from payment_service.sandbox_psp.store import retry_once_on_conflict


def get_payment(sandbox: Sandbox, payment_id: str) -> dict[str, Any]:
    with sandbox.unit_of_work() as uow:
        return schemas.payment_object(find_payment(uow.db, payment_id, lock=False))


def create_refund(
    sandbox: Sandbox, payment_id: str, body: dict[str, Any], key: str | None
) -> tuple[dict[str, Any], bool]:
    """(refund, created); with a known key, the stored refund and created=False."""
    request_hash = schemas.fingerprint({"paymentId": payment_id, **body})

    def attempt() -> tuple[dict[str, Any], bool]:
        with sandbox.unit_of_work() as uow:
            payment = find_payment(uow.db, payment_id, lock=True)
            if key is not None:
                existing = uow.db.scalar(select(Refund).where(Refund.idempotency_key == key))
                if existing is not None:
                    if existing.request_hash != request_hash:
                        raise idempotency_error(KEY_REUSED)
                    return schemas.refund_object(existing), False
            amount, reason = schemas.parse_refund_request(body)
            if payment.status != "succeeded":
                raise invalid_state(
                    f"Payment {payment_id} was declined; there is nothing to refund."
                )
            remaining = payment.amount - payment.amount_refunded
            if remaining <= 0:
                raise invalid_state(f"Payment {payment_id} is already fully refunded.")
            if amount is not None and amount > remaining:
                raise invalid_state(f"Amount {amount} exceeds the refundable {remaining}.")
            refund = Refund(
                id=new_id("sbr"),
                payment=payment,
                status="succeeded",
                amount=remaining if amount is None else amount,
                currency=payment.currency,
                reason=reason,
                created_at=utcnow(),
                idempotency_key=key,
                request_hash=request_hash if key else None,
            )
            uow.db.add(refund)
            uow.db.flush()
            uow.emit("refund.succeeded", schemas.refund_object(refund), payment.session.webhook_url)
            return schemas.refund_object(refund), True

    return retry_once_on_conflict(attempt)
