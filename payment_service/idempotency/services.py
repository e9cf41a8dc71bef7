"""Run a request once per (merchant, Idempotency-Key), as Stripe does.

The key is claimed by INSERTing its row in a short transaction of its own; the unique index
makes a concurrent second claim fail, so two requests with one key never both run. The use
case then runs in its own transaction, which also stores the answer: the effect and the stored
answer commit together or not at all. Errors are not stored: the claim is released, nothing
was committed, and a retry runs again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import delete, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from payment_service.db import Database, utcnow
from payment_service.errors import IdempotencyKeyInUse, IdempotencyKeyMissing, IdempotencyKeyReused
from payment_service.idempotency.models import COMPLETED, IN_PROGRESS, IdempotencyRecord

RETENTION = timedelta(hours=24)
# A claim older than this belongs to a process that died mid-request; another may take it.
ABANDONED_AFTER = timedelta(minutes=2)
MAX_KEY_LENGTH = 255


@dataclass(frozen=True)
class StoredResponse:
    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)


def check_key(key: str | None) -> str:
    if key is None or not (1 <= len(key) <= MAX_KEY_LENGTH) or not key.isprintable():
        raise IdempotencyKeyMissing()
    return key


def fingerprint(method: str, path: str, body: object) -> str:
    """Method, path and the canonical form of the JSON body (key order and spacing ignored)."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{method}\n{path}\n{canonical}".encode()).hexdigest()


def run_idempotent(
    db: Database,
    merchant_id: str,
    key: str,
    request_fingerprint: str,
    handler: Callable[[Session], StoredResponse],
) -> tuple[StoredResponse, bool]:
    """Return (answer, replayed). Raises IdempotencyKeyReused for a different request under
    the same key, IdempotencyKeyInUse while the first is still running, and whatever the
    handler raises (after releasing the claim)."""
    replay = _claim(db, merchant_id, key, request_fingerprint)
    if replay is not None:
        return replay, True
    try:
        with db.transaction() as session:
            response = handler(session)
            session.execute(
                update(IdempotencyRecord)
                .where(IdempotencyRecord.merchant_id == merchant_id, IdempotencyRecord.key == key)
                .values(
                    state=COMPLETED,
                    response_status=response.status,
                    response_headers=dict(response.headers),
                    response_body=response.body,
                )
            )
    except BaseException:
        _release(db, merchant_id, key)
        raise
    return response, False


def _claim(
    db: Database, merchant_id: str, key: str, request_fingerprint: str
) -> StoredResponse | None:
    try:
        with db.transaction() as session:
            if db.is_postgresql:
                # The claim only matters while this request runs; if the server crashes before
                # it reaches disk, the request died with it. No fsync for it, then.
                session.execute(text("SET LOCAL synchronous_commit = off"))
            session.add(
                IdempotencyRecord(merchant_id=merchant_id, key=key, fingerprint=request_fingerprint)
            )
        return None
    except IntegrityError:
        pass  # the key exists: decide from its row
    now = utcnow()
    with db.transaction() as session:
        record = session.scalars(
            select(IdempotencyRecord).where(
                IdempotencyRecord.merchant_id == merchant_id, IdempotencyRecord.key == key
            )
        ).one_or_none()
        if record is None:  # released between our INSERT and this read: the first one failed
            raise IdempotencyKeyInUse()
        if record.created_at < now - RETENTION:
            return _take_over(session, record, request_fingerprint, now)
        if record.fingerprint != request_fingerprint:
            raise IdempotencyKeyReused()
        if record.state == COMPLETED:
            return StoredResponse(
                record.response_status or 200,
                record.response_body or b"",
                record.response_headers or {},
            )
        if record.locked_at < now - ABANDONED_AFTER:
            return _take_over(session, record, request_fingerprint, now)
    raise IdempotencyKeyInUse()


def _take_over(
    session: Session, record: IdempotencyRecord, request_fingerprint: str, now: datetime
) -> None:
    """Claim an expired or abandoned key, unless another request took it first."""
    taken = session.execute(
        update(IdempotencyRecord)
        .where(IdempotencyRecord.id == record.id, IdempotencyRecord.locked_at == record.locked_at)
        .values(fingerprint=request_fingerprint, state=IN_PROGRESS, created_at=now, locked_at=now,
                response_status=None, response_headers=None, response_body=None)
    )  # fmt: skip
    if taken.rowcount != 1:  # type: ignore[attr-defined]
        raise IdempotencyKeyInUse()
    return None


def _release(db: Database, merchant_id: str, key: str) -> None:
    with db.transaction() as session:
        session.execute(
            delete(IdempotencyRecord).where(
                IdempotencyRecord.merchant_id == merchant_id,
                IdempotencyRecord.key == key,
                IdempotencyRecord.state == IN_PROGRESS,
            )
        )


def purge_expired(db: Database, now: datetime | None = None) -> int:
    """Delete records older than 24 hours; returns how many. The worker calls this."""
    cutoff = (now or utcnow()) - RETENTION
    with db.transaction() as session:
        result = session.execute(
            delete(IdempotencyRecord).where(IdempotencyRecord.created_at < cutoff)
        )
    return int(result.rowcount)  # type: ignore[attr-defined]
