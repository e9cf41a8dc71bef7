"""Run a request once per (merchant, Idempotency-Key), as Stripe does.

One transaction per request. It first takes the key: on PostgreSQL a transaction-level
advisory lock on a 64-bit hash of (merchant, key), without waiting (held by another request:
409 `idempotency_key_in_use`, the first one is still in flight); on SQLite the transaction's
BEGIN IMMEDIATE already serialises every writer. Holding the key, it reads the key's row:
the stored answer is replayed, a different request under the key is 422, and with no row the
use case runs and the answer is INSERTed in the same transaction. The effect and the stored
answer commit together or not at all: an error (or a crash) rolls both back, nothing is left
behind, and a retry runs again. The unique index on (merchant_id, key) stays as the backstop.

On PostgreSQL the usual checkout create does all of this in one statement instead
(checkouts.at_once.create_at_once: the lock, both checks and both inserts, one round trip)
and comes here only when something is unusual: a stored answer, a live checkout, a race.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import bindparam, delete, insert, select, text
from sqlalchemy.exc import IntegrityError

from payment_service import rawsql
from payment_service.db import Database, utcnow
from payment_service.errors import IdempotencyKeyInUse, IdempotencyKeyMissing, IdempotencyKeyReused
from payment_service.idempotency.models import COMPLETED, IdempotencyRecord
from payment_service.rawsql import Statement, Tx

RETENTION = timedelta(hours=24)
MAX_KEY_LENGTH = 255

_TABLE = IdempotencyRecord.__table__
_COLUMNS = _TABLE.c  # type: ignore[attr-defined]
# Every request runs these: compiled once, run on the DBAPI cursor (see rawsql).
_TRY_LOCK = Statement(text("SELECT pg_try_advisory_xact_lock(:lock_id)"))
_STORED = Statement(
    select(
        _COLUMNS.id, _COLUMNS.fingerprint, _COLUMNS.created_at, _COLUMNS.response_status,
        _COLUMNS.response_headers, _COLUMNS.response_body,
    ).where(_COLUMNS.merchant_id == bindparam("merchant_id"), _COLUMNS.key == bindparam("key"))
)  # fmt: skip
_DELETE = Statement(delete(_TABLE).where(_COLUMNS.id == bindparam("id")))
_INSERT = Statement(
    insert(_TABLE),
    column_keys=[
        "merchant_id", "key", "fingerprint", "state", "response_status", "response_headers",
        "response_body", "created_at", "locked_at",
    ],
)  # fmt: skip


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


def lock_id(merchant_id: str, key: str) -> int:
    """The advisory lock of a (merchant, key): a signed 64-bit hash, PostgreSQL's bigint."""
    digest = hashlib.sha256(f"{merchant_id}\n{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def run_idempotent(
    db: Database,
    merchant_id: str,
    key: str,
    request_fingerprint: str,
    handler: Callable[[Tx], StoredResponse],
    *,
    lock: bool = True,
) -> tuple[StoredResponse, bool]:
    """Return (answer, replayed). Raises IdempotencyKeyReused for a different request under
    the same key, IdempotencyKeyInUse while the first is still running, and whatever the
    handler raises (after rolling everything back, so nothing is stored).

    `lock=False` skips the PostgreSQL advisory lock. Only the race controls use it, to show
    that without the lock (and the unique index) concurrent requests do run twice."""
    try:
        with rawsql.transaction(db) as tx:
            if lock and tx.is_postgresql and not _try_lock(tx, merchant_id, key):
                raise IdempotencyKeyInUse()
            stored = _stored(tx, merchant_id, key, request_fingerprint)
            if stored is not None:
                return stored, True
            response = handler(tx)
            now = utcnow()
            try:
                tx.execute(
                    _INSERT,
                    {
                        "merchant_id": merchant_id,
                        "key": key,
                        "fingerprint": request_fingerprint,
                        "state": COMPLETED,
                        "response_status": response.status,
                        "response_headers": dict(response.headers),
                        "response_body": response.body,
                        "created_at": now,
                        "locked_at": now,
                    },
                )
            except IntegrityError as exc:  # not the handler's: its conflicts reach the caller
                raise _KeyTaken() from exc
    except _KeyTaken:
        pass  # the backstop: another request stored this key first; answer from its row
    else:
        return response, False
    with rawsql.transaction(db) as tx:
        stored = _stored(tx, merchant_id, key, request_fingerprint)
    if stored is None:
        raise IdempotencyKeyInUse()
    return stored, True


def _try_lock(tx: Tx, merchant_id: str, key: str) -> bool:
    """Take the key's advisory lock until this transaction ends; False if another holds it."""
    row = tx.first(_TRY_LOCK, {"lock_id": lock_id(merchant_id, key)})
    return bool(row and row[0])


class _KeyTaken(Exception):
    """The unique index refused our row: rolls the transaction back, then the row decides."""


def _stored(tx: Tx, merchant_id: str, key: str, request_fingerprint: str) -> StoredResponse | None:
    """The answer to replay, None when the key is free; raises for a key that is not ours."""
    row = tx.first(_STORED, {"merchant_id": merchant_id, "key": key})  # unique (merchant, key)
    if row is None:
        return None
    record_id, stored_fingerprint, created_at, status, headers, body = row
    if created_at < utcnow() - RETENTION:
        # Expired: the key is free again. We hold the key (advisory lock or SQLite's write
        # lock), so nobody else deletes or reuses it meanwhile.
        tx.execute(_DELETE, {"id": record_id})
        return None
    if stored_fingerprint != request_fingerprint:
        raise IdempotencyKeyReused()
    return StoredResponse(status or 200, bytes(body or b""), headers or {})


def purge_expired(db: Database, now: datetime | None = None) -> int:
    """Delete records older than 24 hours; returns how many. The worker calls this."""
    cutoff = (now or utcnow()) - RETENTION
    with db.transaction() as session:
        result = session.execute(
            delete(IdempotencyRecord).where(IdempotencyRecord.created_at < cutoff)
        )
    return int(result.rowcount)  # type: ignore[attr-defined]
