"""The usual checkout create on PostgreSQL: one statement, one round trip (see create_at_once).

The general path (services.create_checkout inside idempotency.run_idempotent) takes six round
trips: BEGIN, the key's advisory lock, the stored-answer read, two INSERTs and COMMIT. Here the
same work is one statement outside a transaction block; anything unusual changes nothing and
is left to the general path.
"""

from __future__ import annotations

import structlog
from sqlalchemy import BigInteger, TextClause, bindparam, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from payment_service import rawsql
from payment_service.checkouts.models import LIVE_STATUSES, Checkout
from payment_service.checkouts.services import checkout_row, name_in_logs
from payment_service.db import Database
from payment_service.errors import IdempotencyKeyInUse
from payment_service.idempotency.models import COMPLETED, IdempotencyRecord
from payment_service.idempotency.services import StoredResponse, lock_id
from payment_service.rawsql import Statement

log = structlog.get_logger(__name__)
_CHECKOUTS = Checkout.__table__
_RECORDS = IdempotencyRecord.__table__
_RECORD_COLUMNS = (
    "merchant_id", "key", "fingerprint", "state", "response_status", "response_headers",
    "response_body", "created_at", "locked_at",
)  # fmt: skip


def _create_at_once(lock: bool, *, pause: float = 0.0) -> TextClause:
    """One PostgreSQL statement for the whole usual create: take the key (advisory lock,
    without waiting), insert the checkout unless the key has a stored answer or the
    reservation a live checkout, and insert the key's answer only if the checkout went in.

    Run outside a transaction block it is its own transaction: both rows or neither. A
    concurrent insert of the same reservation makes the checkout insert do nothing (the
    partial unique index, ON CONFLICT DO NOTHING), so no answer is stored either; a concurrent
    answer under the same key makes the answer's insert fail on its unique index, which undoes
    the checkout too. `lock=False` and `pause` (seconds slept inside the statement, between
    its snapshot and its commit) are for the race controls only."""
    checkout_columns = list(_CHECKOUTS.columns)  # type: ignore[attr-defined]
    record_columns = [_RECORDS.c[name] for name in _RECORD_COLUMNS]  # type: ignore[attr-defined]
    binds = [bindparam(column.key, type_=column.type) for column in checkout_columns]
    binds += [bindparam(f"record_{column.key}", type_=column.type) for column in record_columns]
    taken = "true"
    if lock:
        binds.append(bindparam("lock_id", type_=BigInteger()))
        taken = "pg_try_advisory_xact_lock(:lock_id)"
    # Only our metadata is formatted into the SQL (names, status literals); values are bound.
    live = ", ".join(f"'{status.value}'" for status in LIVE_STATUSES)
    sql = f"""
WITH key_lock AS MATERIALIZED (SELECT {taken} AS taken{f" FROM pg_sleep({float(pause)})" if pause else ""}),
new_checkout AS (
    INSERT INTO checkouts ({", ".join(column.name for column in checkout_columns)})
    SELECT {", ".join(f":{column.key}" for column in checkout_columns)} FROM key_lock
    WHERE key_lock.taken
      AND NOT EXISTS (SELECT FROM idempotency_keys
                      WHERE merchant_id = :merchant_id AND key = :record_key)
      AND NOT EXISTS (SELECT FROM checkouts
                      WHERE merchant_id = :merchant_id AND reservation_id = :reservation_id
                        AND status IN ({live}))
    ON CONFLICT DO NOTHING
    RETURNING id
),
new_answer AS (
    INSERT INTO idempotency_keys ({", ".join(column.name for column in record_columns)})
    SELECT {", ".join(f":record_{column.key}" for column in record_columns)} FROM new_checkout
    RETURNING id
)
SELECT (SELECT taken FROM key_lock), (SELECT count(*) FROM new_answer)"""  # noqa: S608
    return text(sql).bindparams(*binds)


_CREATE_AT_ONCE = {True: Statement(_create_at_once(True)), False: Statement(_create_at_once(False))}


def create_at_once(
    db: Database,
    checkout: Checkout,
    key: str,
    request_fingerprint: str,
    response: StoredResponse,
    *,
    lock: bool = True,
) -> bool:
    """PostgreSQL: insert the checkout and its key's stored answer in one statement, one round
    trip, no BEGIN/COMMIT (see `_create_at_once`). True when both went in. False when nothing
    was changed because something is unusual (the key has an answer, the reservation a live
    checkout, a concurrent request won): the caller then runs the general path,
    `run_idempotent` with `create_checkout`, which sorts out each case. Raises
    IdempotencyKeyInUse while another request holds the key."""
    values = checkout_row(checkout)
    values.update(
        {
            "lock_id": lock_id(checkout.merchant_id, key),
            "record_merchant_id": checkout.merchant_id,
            "record_key": key,
            "record_fingerprint": request_fingerprint,
            "record_state": COMPLETED,
            "record_response_status": response.status,
            "record_response_headers": dict(response.headers),
            "record_response_body": response.body,
            "record_created_at": checkout.created_at,
            "record_locked_at": checkout.created_at,
        }
    )
    if not lock:
        del values["lock_id"]
    try:
        with rawsql.single_statements(db) as tx:
            row = tx.first(_CREATE_AT_ONCE[lock], values)
    except IntegrityError:
        return False  # a concurrent answer under this key: the statement changed nothing
    except DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
        # The connection died under the statement: the server was terminating it while the
        # pool's checkout check still saw it idle (pg_terminate_backend, a restart). Whether
        # the statement committed is unknown, and need not be: the general path, on a fresh
        # connection, creates the checkout if it did not, and replays its stored answer if
        # it did (which the caller answers as a create: its body names this checkout).
        log.warning("checkout.create_at_once_disconnected", error=type(exc.orig).__name__)
        return False
    assert row is not None
    taken, answers = row
    if not taken:
        raise IdempotencyKeyInUse()
    if answers != 1:
        return False
    name_in_logs(checkout)
    return True
