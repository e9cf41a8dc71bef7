"""Recording attempts of concurrent senders in shared transactions (the group commit)."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import event, select, text
from sqlalchemy.exc import IntegrityError, OperationalError

from payment_service.callbacks.dispatcher import claim_due
from payment_service.callbacks.models import Delivery, DeliveryAttempt
from payment_service.callbacks.recording import Attempted, GroupRecorder, record_results
from payment_service.callbacks.sender import AttemptResult
from payment_service.db import utcnow
from tests.db_faults import cutting_proxy
from tests.integration.callbacks.conftest import add_checkout, add_event
from tests.integration.callbacks.helpers import attempts_of

SCHEDULE = (0, 1, 2)
THREADS = 6


def _claims(db, platform, receiver, count):
    for _ in range(count):
        add_event(db, add_checkout(db, platform.merchant_id, receiver.url()))
    claims = claim_due(db, "w1", limit=count)
    assert len(claims) == count
    return claims


def _commits(db):
    commits: list[int] = []
    event.listen(db.engine, "commit", lambda _conn: commits.append(1))
    return commits


def _record_all_while_the_first_waits(db, recorder, attempted):
    """The first thread's write waits on a lock held here until the others have queued."""
    results: list[object] = [None] * len(attempted)
    first_id = attempted[0].claim.delivery_id

    def record(i: int) -> None:
        try:
            results[i] = recorder.record(db, attempted[i])
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=record, args=(i,)) for i in range(len(attempted))]
    with db.engine.connect() as blocker:
        # PostgreSQL: a row lock the first UPDATE waits for. SQLite: this transaction begins
        # IMMEDIATE (as all of ours), so the writer's own BEGIN IMMEDIATE waits for it.
        blocker.execute(
            text("SELECT id FROM deliveries WHERE id = :id FOR UPDATE")
            if db.is_postgresql
            else text("SELECT id FROM deliveries WHERE id = :id"),
            {"id": first_id},
        )
        threads[0].start()
        time.sleep(0.3)  # the first thread is writing (and waiting)
        for thread in threads[1:]:
            thread.start()
        time.sleep(0.3)  # the others have queued behind it
        blocker.rollback()
    for thread in threads:
        thread.join(10)
    return results


REJECTION = '{"error":{"code":"registration_closed"}}'  # a 409/410/422 rejects with this body


def _result(status_code: int) -> AttemptResult:
    excerpt = REJECTION if status_code in (409, 410, 422) else None
    return AttemptResult(
        started_at=utcnow(), duration_ms=3, status_code=status_code, response_excerpt=excerpt
    )


def test_concurrent_attempts_share_a_transaction_and_each_gets_its_outcome(db, receiver, platform):
    claims = _claims(db, platform, receiver, THREADS)
    codes = [200, 503, 200, 410, 200, 500]
    attempted = [
        Attempted(c, _result(code), SCHEDULE) for c, code in zip(claims, codes, strict=True)
    ]
    commits = _commits(db)

    results = _record_all_while_the_first_waits(db, GroupRecorder(), attempted)

    assert results == ["delivered", "pending", "delivered", "rejected", "delivered", "pending"]
    assert len(commits) == 2  # the first alone, then the five that queued meanwhile
    for claim, code in zip(claims, codes, strict=True):
        [attempt] = attempts_of(db, claim.delivery_id)
        assert (attempt.number, attempt.status_code, attempt.worker_id) == (1, code, "w1")
    with db.transaction() as session:
        leased = session.scalars(
            select(Delivery.lease_owner).where(Delivery.lease_owner.is_not(None))
        )
        assert list(leased) == []  # every lease released


def test_one_attempt_that_cannot_be_written_does_not_cost_the_others_their_record(
    db, receiver, platform
):
    claims = _claims(db, platform, receiver, THREADS)
    bad = claims[3]
    with db.transaction() as session:  # its attempt number 1 exists already: the INSERT fails
        session.add(DeliveryAttempt(delivery_id=bad.delivery_id, number=1, worker_id="other",
                                    started_at=utcnow(), duration_ms=1, status_code=500))  # fmt: skip
    attempted = [Attempted(c, _result(200), SCHEDULE) for c in claims]

    results = _record_all_while_the_first_waits(db, GroupRecorder(), attempted)

    assert isinstance(results[3], IntegrityError)  # raised to its own thread only
    assert [r for i, r in enumerate(results) if i != 3] == ["delivered"] * (THREADS - 1)
    for claim in claims:
        recorded = attempts_of(db, claim.delivery_id)
        assert [a.worker_id for a in recorded] == (["other"] if claim is bad else ["w1"])
    with db.transaction() as session:
        still_leased = session.scalar(
            select(Delivery.lease_owner).where(Delivery.id == bad.delivery_id)
        )
    assert still_leased == "w1"  # nothing of it was written: its lease runs out, then a retry


@pytest.mark.parametrize("lease_lost", [False, True])
def test_an_attempt_recorded_after_its_lease_was_taken_is_not_written(
    db, receiver, platform, lease_lost
):
    [claim] = _claims(db, platform, receiver, 1)
    if lease_lost:
        claim_due(db, "w2", now=utcnow() + timedelta(minutes=5))  # the lease ran out: taken
    outcome = GroupRecorder().record(db, Attempted(claim, _result(200), SCHEDULE))
    assert outcome == (None if lease_lost else "delivered")
    assert len(attempts_of(db, claim.delivery_id)) == (0 if lease_lost else 1)


# pg_terminate_backend is PostgreSQL's; SQLite has no server connection to cut.
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_an_attempt_whose_connection_is_cut_is_written_on_a_fresh_one(
    db, receiver, platform, cut_next_checkout
):
    [claim] = _claims(db, platform, receiver, 1)
    cut_next_checkout(db.engine)
    outcome = GroupRecorder().record(db, Attempted(claim, _result(200), SCHEDULE))
    assert outcome == "delivered"
    assert [a.worker_id for a in attempts_of(db, claim.delivery_id)] == ["w1"]
    with db.transaction() as session:
        delivery = session.get(Delivery, claim.delivery_id)
        assert (delivery.status, delivery.lease_owner) == ("delivered", None)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_control_a_cut_connection_fails_the_write_itself(db, receiver, platform, cut_next_checkout):
    """The harness does cut the connection the write uses: without the recorder's second try
    the attempt is not written, and its lease would have to run out."""
    [claim] = _claims(db, platform, receiver, 1)
    cut_next_checkout(db.engine)
    with pytest.raises(OperationalError) as failed:
        record_results(db, [Attempted(claim, _result(200), SCHEDULE)])
    assert failed.value.connection_invalidated
    assert attempts_of(db, claim.delivery_id) == []


def test_writing_an_attempt_again_after_it_was_committed_writes_nothing(db, receiver, platform):
    """Why the second try is safe when the first COMMIT did reach the server."""
    [claim] = _claims(db, platform, receiver, 1)
    attempted = Attempted(claim, _result(200), SCHEDULE)
    assert record_results(db, [attempted]) == ["delivered"]
    assert record_results(db, [attempted]) == [None]
    assert len(attempts_of(db, claim.delivery_id)) == 1


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_an_attempt_whose_commit_went_through_before_the_cut_counts_as_recorded(
    db, database_url, receiver, platform, caplog
):
    """The COMMIT reaches the server and its reply is lost: the second try writes nothing
    and reports the attempt as recorded, not as a lost lease."""
    from structlog.testing import capture_logs

    from payment_service.db import Database

    caplog.set_level("INFO", logger="payment_service.callbacks.dispatcher")  # attempt lines
    [claim] = _claims(db, platform, receiver, 1)
    with cutting_proxy(database_url) as proxy:
        proxied = Database(proxy.url(database_url), pool_size=2)
        try:
            proxy.arm(b"COMMIT")
            with capture_logs() as logs:
                outcome = GroupRecorder().record(proxied, Attempted(claim, _result(200), SCHEDULE))
        finally:
            proxied.dispose()
    assert proxy.cuts == 1
    assert outcome == "delivered"
    assert [a.worker_id for a in attempts_of(db, claim.delivery_id)] == ["w1"]
    lines = [(line["event"], line.get("outcome")) for line in logs]
    assert lines == [("callback.record_reconnected", None), ("callback.attempt", "delivered")]
