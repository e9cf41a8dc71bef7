"""A refund the provider does not report as succeeded for the whole payment (pending, failed,
or for another amount) is not the money back: it stays `requested` and is asked about again on
the job's backoff, under the same key, until the provider reports it done (CONTRACT §6, §8)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from structlog.testing import capture_logs

from payment_service.db import utcnow
from payment_service.payments.refunds import process_due_refunds
from payment_service.providers.base import ProviderRefund
from payment_service.providers.registry import ProviderRegistry
from payment_service.providers.sandbox import SandboxProvider
from tests.integration.refunds.conftest import REJECTION, RecordingProvider, Reply, World


class ReportsFirst(RecordingProvider):
    """The real sandbox adapter, whose first answer is changed to what a provider may answer
    while a refund is still being processed (the sandbox itself always refunds at once)."""

    def __init__(self, inner: SandboxProvider, **first_answer: Any) -> None:
        super().__init__(inner)
        self.first_answer = first_answer

    def refund(
        self, payment_id: str, amount: int, *, idempotency_key: str, reason: str
    ) -> ProviderRefund:
        refunded = super().refund(
            payment_id, amount, idempotency_key=idempotency_key, reason=reason
        )
        if len(self.refund_keys) == 1:
            return replace(refunded, **self.first_answer)
        return refunded


@pytest.mark.parametrize(
    "first_answer",
    [{"succeeded": False}, {"amount": 10000}, {"currency": "USD"}],
    ids=["pending", "part-of-the-amount", "another-currency"],
)
def test_a_refund_not_reported_done_for_the_whole_payment_is_retried(
    world: World, first_answer: dict[str, Any]
) -> None:
    paid = world.pay()
    world.receiver.script(Reply(409, REJECTION))
    assert world.deliver() == ["rejected"]
    provider = ReportsFirst(world.provider.inner, **first_answer)
    registry = ProviderRegistry([provider])  # type: ignore[list-item]
    start = utcnow()

    with capture_logs() as logs:
        assert process_due_refunds(world.db, registry, now=start) == 1

    [refund] = world.refund_rows(paid.checkout_id)
    assert (refund.status, refund.attempts) == ("requested", 1)
    assert refund.next_attempt_at == start + timedelta(seconds=5)  # the first backoff step
    assert refund.provider_refund_id is None and refund.completed_at is None
    assert world.checkout(paid.checkout_id).status == "paid"
    assert [event.type for event, _ in world.events(paid.checkout_id)] == ["ticket_payment.paid"]
    [retry] = [line for line in logs if line["event"] == "refund.retry"]
    assert (retry["log_level"], retry["refundId"]) == ("warning", refund.id)
    assert retry["error"] == refund.last_error and "provider refund sbr_" in retry["error"]
    assert not [line for line in logs if line["event"] == "refund.succeeded"]

    assert process_due_refunds(world.db, registry, now=start + timedelta(seconds=4)) == 0
    assert process_due_refunds(world.db, registry, now=start + timedelta(seconds=6)) == 1
    [refund] = world.refund_rows(paid.checkout_id)
    assert (refund.status, refund.attempts) == ("succeeded", 1)
    assert provider.refund_keys == [f"refund:{refund.id}"] * 2  # one refund, asked about twice
    assert world.sandbox_payment(paid.provider_payment_id)["amountRefunded"] == 30000
    assert world.checkout(paid.checkout_id).status == "refunded"
    assert [event.type for event, _ in world.events(paid.checkout_id)] == [
        "ticket_payment.paid", "ticket_payment.refunded",
    ]  # fmt: skip
