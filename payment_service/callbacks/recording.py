"""Recording delivery attempts: classify each answer, write the attempt and the delivery's new
state (releasing the lease), and start a refund when the platform rejects a paid checkout.

A rejection is a 409, 410 or 422 whose body is a CONTRACT §3 error body: a platform says so
on purpose. The same status with any other body (a proxy's or WAF's HTML page, nothing at
all) may not come from the platform's handler at all, so it is retried like any other failure
rather than refunding a ticket the platform never refused.

Concurrent sender threads share transactions (`GroupRecorder`, a group commit): while one
thread writes, the others queue their results, and the next writer takes them all at once.
Under load that is one transaction per handful of attempts instead of one per attempt; alone,
a result is written at once.
"""

from __future__ import annotations

import json
import logging
import random
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import Integer, String, bindparam, func, insert, literal_column, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from payment_service import rawsql
from payment_service.callbacks.models import Delivery, DeliveryAttempt, DeliveryStatus
from payment_service.callbacks.sender import REJECTED_CODES, AttemptResult
from payment_service.db import Database, UTCDateTime, utcnow
from payment_service.payments.refunds import platform_rejection_reason, request_refund
from payment_service.rawsql import Statement, Tx
from shared_contracts.errors import error_code_of
from shared_contracts.events import EventType

if TYPE_CHECKING:
    from payment_service.callbacks.dispatcher import Claim

# The attempt lines keep the logger name they always had.
_LOGGER_NAME = "payment_service.callbacks.dispatcher"
log = structlog.get_logger(_LOGGER_NAME)

# CONTRACT §8: final, never retried, but only with an error body (`is_rejection`).
JITTER = 0.10

_RECORD = Statement(
    update(Delivery)
    .where(
        Delivery.id == bindparam("delivery_id"),
        Delivery.lease_owner == bindparam("owner"),
        Delivery.attempts == bindparam("previous_attempts"),
        Delivery.status == literal_column("'pending'"),
    )
    .values(
        status=bindparam("new_status"),
        attempts=bindparam("new_attempts"),
        lease_owner=None,
        lease_expires_at=None,
        last_status_code=bindparam("status_code", type_=Integer()),
        last_error=bindparam("error", type_=String()),
        # Unchanged when not given: only a retry moves it, only a 2xx sets delivered_at.
        next_attempt_at=func.coalesce(
            bindparam("next_attempt_at", type_=UTCDateTime()), Delivery.next_attempt_at
        ),
        delivered_at=func.coalesce(
            bindparam("delivered_at", type_=UTCDateTime()), Delivery.delivered_at
        ),
    )
)
_INSERT_ATTEMPT = Statement(
    insert(DeliveryAttempt.__table__),
    column_keys=[
        "delivery_id", "number", "worker_id", "started_at", "duration_ms", "status_code",
        "error", "response_excerpt",
    ],
)  # fmt: skip

# Whether this worker's attempt is already written: its row names the worker, and the number
# is unique per delivery. Asked only on a second try, after a lost connection.
_ATTEMPT_WRITTEN = Statement(
    select(DeliveryAttempt.number).where(
        DeliveryAttempt.delivery_id == bindparam("delivery_id"),
        DeliveryAttempt.number == bindparam("number"),
        DeliveryAttempt.worker_id == bindparam("worker_id"),
    )
)


def is_rejection(status_code: int | None, body: str | None) -> bool:
    """CONTRACT §8: a 409, 410 or 422 with an error body refuses the event for good. ``body``
    is what the sender read of the answer (all of such an answer up to 64 KiB); a body that
    does not parse as a §3 error body does not count: a missed rejection is retried, then
    `dead` and replayable, where a false one refunds a ticket for good."""
    return status_code in REJECTED_CODES and error_code_of(body) is not None


def classify(
    status_code: int | None,
    attempts: int,
    schedule: Sequence[int],
    now: datetime,
    *,
    answer_body: str | None,
) -> tuple[DeliveryStatus, datetime | None]:
    """(new status, next attempt time) after ``attempts`` attempts, the last answered so.

    ``schedule[n]`` is the delay before attempt n+1 (its first entry, normally 0, is the first
    attempt): after n failed attempts the next waits ``schedule[n]`` ± 10 %; none left: dead.
    """
    if status_code is not None and 200 <= status_code < 300:
        return DeliveryStatus.DELIVERED, None
    if is_rejection(status_code, answer_body):
        return DeliveryStatus.REJECTED, None
    if attempts >= len(schedule):
        return DeliveryStatus.DEAD, None
    delay = schedule[attempts] * random.uniform(1 - JITTER, 1 + JITTER)
    return DeliveryStatus.PENDING, now + timedelta(seconds=delay)


@dataclass(frozen=True)
class Attempted:
    """One attempt to record: the claim it was made under, what came of it, the schedule."""

    claim: Claim
    result: AttemptResult
    schedule: Sequence[int]


def record_result(
    db: Database,
    claim: Claim,
    result: AttemptResult,
    schedule: Sequence[int],
    *,
    now: datetime | None = None,
) -> DeliveryStatus | None:
    """Write the attempt and the delivery's new state, and release the lease; None (nothing
    written) when this worker no longer holds the lease: the new holder's attempt counts."""
    [outcome] = record_results(db, [Attempted(claim, result, schedule)], now=now)
    return outcome


def record_results(
    db: Database,
    attempted: Sequence[Attempted],
    *,
    now: datetime | None = None,
    again: bool = False,
) -> list[DeliveryStatus | None]:
    """record_result for several attempts, in one transaction; outcomes in the same order.

    ``again``: a second try after the first lost its connection, which may have committed
    before it died. An attempt the first try did write counts as recorded, not as a lost
    lease, and is not written twice."""
    now = now or utcnow()
    outcomes: list[tuple[DeliveryStatus, bool, bool]] = []  # status, owned, written before
    with rawsql.transaction(db) as tx:
        rows: list[dict[str, Any]] = []
        for item in attempted:
            status, owned = _record_one(tx, item, now)
            before = not owned and again and _written_before(tx, item)
            outcomes.append((status, owned, before))
            if owned:
                rows.append(_attempt_row(item))
        if rows:
            tx.execute_many(_INSERT_ATTEMPT, rows)
    if logging.getLogger(_LOGGER_NAME).isEnabledFor(logging.INFO):  # else skip building lines
        for item, (status, owned, before) in zip(attempted, outcomes, strict=True):
            _log_attempt(item, status.value if owned or before else "lease_lost")
    return [status if owned or before else None for status, owned, before in outcomes]


def _written_before(tx: Tx, item: Attempted) -> bool:
    claim = item.claim
    values = {"delivery_id": claim.delivery_id, "number": claim.attempts + 1,
              "worker_id": claim.worker_id}  # fmt: skip
    return tx.first(_ATTEMPT_WRITTEN, values) is not None


def _record_one(tx: Tx, item: Attempted, now: datetime) -> tuple[DeliveryStatus, bool]:
    claim, result = item.claim, item.result
    status, next_attempt_at = classify(
        result.status_code,
        claim.attempts + 1,
        item.schedule,
        now,
        answer_body=result.answer_body,
    )
    owned = (
        tx.execute(
            _RECORD,
            {
                "delivery_id": claim.delivery_id,
                "owner": claim.worker_id,
                "previous_attempts": claim.attempts,
                "new_status": status.value,
                "new_attempts": claim.attempts + 1,
                "status_code": result.status_code,
                "error": result.error,
                "next_attempt_at": next_attempt_at,
                "delivered_at": now if status == DeliveryStatus.DELIVERED else None,
            },
        )
        == 1
    )
    if owned and status == DeliveryStatus.REJECTED:
        _on_rejected(tx.session, claim, result)
    return status, owned


def _attempt_row(item: Attempted) -> dict[str, Any]:
    claim, result = item.claim, item.result
    return {
        "delivery_id": claim.delivery_id,
        "number": claim.attempts + 1,
        "worker_id": claim.worker_id,
        "started_at": result.started_at,
        "duration_ms": result.duration_ms,
        "status_code": result.status_code,
        "error": result.error,
        "response_excerpt": result.response_excerpt,
    }


def _log_attempt(item: Attempted, outcome: str) -> None:
    claim, result = item.claim, item.result
    log.info(
        "callback.attempt",
        eventId=claim.event_id,
        eventType=claim.event_type,
        checkoutId=claim.checkout_id,
        reservationId=claim.reservation_id,
        deliveryId=claim.delivery_id,
        attempt=claim.attempts + 1,
        statusCode=result.status_code,
        duration_ms=result.duration_ms,
        error=result.error,
        outcome=outcome,
    )


def _on_rejected(session: Session, claim: Claim, result: AttemptResult) -> None:
    """The platform refused the event for good; runs in the transaction that records it.

    A rejected ticket_payment.paid starts a refund of that payment (CONTRACT §8): the refund
    request is written here, in this transaction, so it cannot be lost; the refund job then
    calls the provider (with its own idempotency key and retries), moves the checkout to
    `refunded` and records ticket_payment.refunded.
    """
    if claim.event_type != EventType.PAID:
        return
    reason = platform_rejection_reason(result.answer_body)
    try:
        payment_id = json.loads(claim.outgoing.body)["data"]["paymentId"]
    except (ValueError, TypeError, KeyError):
        payment_id = None
    # Both lines name the reservation too: support searches by it (CONTRACT §4).
    with structlog.contextvars.bound_contextvars(
        checkoutId=claim.checkout_id, reservationId=claim.reservation_id
    ):
        log.warning(
            "callback.paid_rejected", eventId=claim.event_id, statusCode=result.status_code,
            reason=reason,
        )  # fmt: skip
        request_refund(
            session, claim.checkout_id, reason, claim.outgoing.request_id,
            payment_id=payment_id if isinstance(payment_id, str) else None,
        )  # fmt: skip


class _Waiting:
    def __init__(self, db: Database, attempted: Attempted) -> None:
        self.db = db
        self.attempted = attempted
        self.done = False
        self.outcome: DeliveryStatus | None = None
        self.error: BaseException | None = None


class GroupRecorder:
    """Records the attempts of concurrent threads in shared transactions (a group commit).

    `record` returns once the caller's attempt is committed, with its outcome, or raises what
    writing it raised. A failed shared transaction is retried one attempt per transaction, so
    one bad attempt never costs the others their record (and their leases a minute)."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._queue: list[_Waiting] = []
        self._writing = False

    def record(self, db: Database, attempted: Attempted) -> DeliveryStatus | None:
        mine = _Waiting(db, attempted)
        with self._changed:
            self._queue.append(mine)
            while self._writing and not mine.done:
                self._changed.wait()
            if not mine.done:  # nobody writes: this thread writes what is queued for its db
                batch = [w for w in self._queue if w.db is db]
                self._queue = [w for w in self._queue if w.db is not db]
                self._writing = True
        if not mine.done:
            try:
                self._write(db, batch)
            finally:
                with self._changed:
                    self._writing = False
                    self._changed.notify_all()
        if mine.error is not None:
            raise mine.error
        return mine.outcome

    @staticmethod
    def _write(db: Database, batch: list[_Waiting], *, reconnected: bool = False) -> None:
        try:
            outcomes = record_results(db, [w.attempted for w in batch], again=reconnected)
        except Exception as exc:
            if not reconnected and isinstance(exc, DBAPIError) and exc.connection_invalidated:
                # The connection died (a restart, pg_terminate_backend): write the same batch
                # once more on a fresh one, rather than leave its leases to run out and its
                # callbacks to be sent again. Safe even if the first COMMIT got through: each
                # UPDATE requires the lease and attempt count it would change, so a repeat
                # writes nothing, and finds the attempt rows the first try wrote.
                log.warning("callback.record_reconnected", error=type(exc.orig).__name__)
                GroupRecorder._write(db, batch, reconnected=True)
                return
            if len(batch) == 1:
                batch[0].error, batch[0].done = exc, True
                return
            for waiting in batch:  # one by one: the bad one fails alone
                GroupRecorder._write(db, [waiting], reconnected=reconnected)
            return
        for waiting, outcome in zip(batch, outcomes, strict=True):
            waiting.outcome, waiting.done = outcome, True
