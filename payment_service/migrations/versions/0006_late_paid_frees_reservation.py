"""a checkout paid late no longer holds its reservation's live-checkout index

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A payment confirmed after its checkout left `open` is recorded (CONTRACT §6) even when the
# platform has made the reservation's next checkout meanwhile, so a late `paid` is not live.
LIVE = sa.text("status = 'open' OR (status = 'paid' AND NOT late)")
# The old index cannot be built while a reservation has a late-paid checkout beside another
# open or paid one: the downgrade then fails at create_index (on SQLite, whose DDL is not
# transactional here, with the index already dropped).
LIVE_BEFORE = sa.text("status IN ('open', 'paid')")


def upgrade() -> None:
    with op.batch_alter_table('checkouts', schema=None) as batch_op:
        batch_op.drop_index('uq_checkouts_live_reservation', postgresql_where=LIVE_BEFORE, sqlite_where=LIVE_BEFORE)
        batch_op.create_index('uq_checkouts_live_reservation', ['merchant_id', 'reservation_id'], unique=True, postgresql_where=LIVE, sqlite_where=LIVE)


def downgrade() -> None:
    with op.batch_alter_table('checkouts', schema=None) as batch_op:
        batch_op.drop_index('uq_checkouts_live_reservation', postgresql_where=LIVE, sqlite_where=LIVE)
        batch_op.create_index('uq_checkouts_live_reservation', ['merchant_id', 'reservation_id'], unique=True, postgresql_where=LIVE_BEFORE, sqlite_where=LIVE_BEFORE)
