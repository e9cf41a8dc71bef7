"""checkouts remember when their provider session was settled, so the sweep settles canceled
and failed checkouts' sessions too

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23
"""

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from alembic import op

import payment_service.db
from payment_service.migrate import waiting_for_locks


revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = 'ix_checkouts_unsettled_session_updated_at'
UNSETTLED_SESSION = sa.text("provider_session_id IS NOT NULL AND provider_session_settled_at IS NULL")
# Rows per backfill statement, each its own transaction on PostgreSQL; config.attributes
# ["backfill_batch"] overrides it (tests use a few rows).
BACKFILL_BATCH = 5000

CHECKOUTS = sa.table(
    'checkouts',
    sa.column('id', sa.String()),
    sa.column('status', sa.String()),
    sa.column('provider_session_id', sa.String()),
    sa.column('closed_at', payment_service.db.UTCDateTime()),
    sa.column('provider_session_settled_at', payment_service.db.UTCDateTime()),
)


def upgrade() -> None:
    column = sa.Column('provider_session_settled_at', payment_service.db.UTCDateTime(timezone=True), nullable=True)
    if op.get_bind().dialect.name == 'sqlite':
        with op.batch_alter_table('checkouts', schema=None) as batch_op:
            batch_op.add_column(column)
        _backfill()
        with op.batch_alter_table('checkouts', schema=None) as batch_op:
            batch_op.create_index(INDEX, ['updated_at', 'id'], unique=False, sqlite_where=UNSETTLED_SESSION)
        return
    # Nullable without a default: no rewrite, so its ACCESS EXCLUSIVE lock lasts a moment; it
    # ends when the autocommit block below commits. Each step can run again after a run that
    # died part-way: IF NOT EXISTS here, the backfill's WHERE, DROP IF EXISTS before the build.
    op.add_column('checkouts', column, if_not_exists=True)
    with op.get_context().autocommit_block():
        _backfill()
        # A build that failed leaves an INVALID index of this name behind.
        with waiting_for_locks(op.get_bind()):
            op.drop_index(INDEX, table_name='checkouts', if_exists=True, postgresql_concurrently=True)
            op.create_index(INDEX, 'checkouts', ['updated_at', 'id'], unique=False, postgresql_where=UNSETTLED_SESSION, postgresql_concurrently=True)


def downgrade() -> None:
    with op.batch_alter_table('checkouts', schema=None) as batch_op:
        batch_op.drop_index(INDEX, postgresql_where=UNSETTLED_SESSION, sqlite_where=UNSETTLED_SESSION)
        batch_op.drop_column('provider_session_settled_at')


def _backfill() -> None:
    """A checkout that left `open` before this release is taken as settled (when it closed), or
    the first sweep after the upgrade would ask the provider about every old session.

    In batches along the primary key, so that no statement holds many row locks for long or
    leaves a million dead rows for one vacuum, and no batch scans again the rows of the ones
    before it. The WHERE clause skips rows already settled by a run that died part-way."""
    config = op.get_context().config
    batch = int(config.attributes.get('backfill_batch', BACKFILL_BATCH)) if config else BACKFILL_BATCH
    now = payment_service.db.utcnow()
    after = ''  # every checkout id sorts after the empty string
    while (last := _last_id_of_batch(after, batch)) is not None:
        _settle_closed(after, last, now)
        after = last


def _last_id_of_batch(after: str, batch: int) -> str | None:
    ids = sa.select(CHECKOUTS.c.id).where(CHECKOUTS.c.id > after).order_by(CHECKOUTS.c.id).limit(batch).subquery()
    return op.get_bind().scalar(sa.select(sa.func.max(ids.c.id)))


def _settle_closed(after: str, last: str, now: datetime) -> None:
    op.execute(
        CHECKOUTS.update()
        .where(
            CHECKOUTS.c.id > after, CHECKOUTS.c.id <= last,
            CHECKOUTS.c.status != 'open', CHECKOUTS.c.provider_session_id.is_not(None),
            CHECKOUTS.c.provider_session_settled_at.is_(None),
        )
        .values(provider_session_settled_at=sa.func.coalesce(
            CHECKOUTS.c.closed_at, sa.literal(now, payment_service.db.UTCDateTime())
        ))
    )
