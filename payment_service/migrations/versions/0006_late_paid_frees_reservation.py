"""a checkout paid late no longer holds its reservation's live-checkout index

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from payment_service.migrate import waiting_for_locks


revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = 'uq_checkouts_live_reservation'
# The new index is built beside the old one under this name, then takes the old one's name.
TEMPORARY_INDEX = 'uq_checkouts_live_reservation_0006'
COLUMNS = ['merchant_id', 'reservation_id']
# A payment confirmed after its checkout left `open` is recorded (CONTRACT §6) even when the
# platform has made the reservation's next checkout meanwhile, so a late `paid` is not live.
LIVE = sa.text("status = 'open' OR (status = 'paid' AND NOT late)")
# The old index cannot be built while a reservation has a late-paid checkout beside another
# open or paid one: the downgrade then fails at create_index (on SQLite, whose DDL is not
# transactional here, with the index already dropped).
LIVE_BEFORE = sa.text("status IN ('open', 'paid')")


def upgrade() -> None:
    if op.get_bind().dialect.name == 'sqlite':
        with op.batch_alter_table('checkouts', schema=None) as batch_op:
            batch_op.drop_index(INDEX, sqlite_where=LIVE_BEFORE)
            batch_op.create_index(INDEX, COLUMNS, unique=True, sqlite_where=LIVE)
        return
    # DROP INDEX takes an ACCESS EXCLUSIVE lock that a plain CREATE INDEX would keep over the
    # whole build, stopping checkouts' reads and writes. Built concurrently instead, the new
    # index exists before the old one goes, so one live checkout per reservation is enforced
    # throughout. A run that died part-way is picked up where it stopped.
    with op.get_context().autocommit_block(), waiting_for_locks(op.get_bind()):
        if not _valid_index_exists(TEMPORARY_INDEX):
            # Missing, or left INVALID by a build that failed: the old index still stands then.
            op.drop_index(TEMPORARY_INDEX, table_name='checkouts', if_exists=True, postgresql_concurrently=True)
            op.create_index(TEMPORARY_INDEX, 'checkouts', COLUMNS, unique=True, postgresql_where=LIVE, postgresql_concurrently=True)
        op.drop_index(INDEX, table_name='checkouts', if_exists=True, postgresql_concurrently=True)
    # In the migration's own transaction, with its version: renaming an index takes no lock
    # that reads or writes wait for.
    op.execute(f'ALTER INDEX {TEMPORARY_INDEX} RENAME TO {INDEX}')


def downgrade() -> None:
    with op.batch_alter_table('checkouts', schema=None) as batch_op:
        batch_op.drop_index(INDEX, postgresql_where=LIVE, sqlite_where=LIVE)
        batch_op.create_index(INDEX, COLUMNS, unique=True, postgresql_where=LIVE_BEFORE, sqlite_where=LIVE_BEFORE)


def _valid_index_exists(name: str) -> bool:
    return bool(op.get_bind().scalar(
        sa.text("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(:name)"), {'name': name}
    ))
