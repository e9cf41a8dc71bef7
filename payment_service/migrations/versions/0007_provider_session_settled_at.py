"""checkouts remember when their provider session was settled, so the sweep settles canceled
and failed checkouts' sessions too

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import payment_service.db


revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UNSETTLED_SESSION = sa.text("provider_session_id IS NOT NULL AND provider_session_settled_at IS NULL")


def upgrade() -> None:
    with op.batch_alter_table('checkouts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('provider_session_settled_at', payment_service.db.UTCDateTime(timezone=True), nullable=True))
    # A checkout that left `open` before this release is taken as settled (when it closed), or
    # the first sweep after the upgrade would ask the provider about every old session.
    checkouts = sa.table(
        'checkouts',
        sa.column('status', sa.String()),
        sa.column('provider_session_id', sa.String()),
        sa.column('closed_at', payment_service.db.UTCDateTime()),
        sa.column('provider_session_settled_at', payment_service.db.UTCDateTime()),
    )
    op.execute(
        checkouts.update()
        .where(checkouts.c.status != 'open', checkouts.c.provider_session_id.is_not(None))
        .values(provider_session_settled_at=sa.func.coalesce(
            checkouts.c.closed_at, sa.literal(payment_service.db.utcnow(), payment_service.db.UTCDateTime())
        ))
    )
    with op.batch_alter_table('checkouts', schema=None) as batch_op:
        batch_op.create_index('ix_checkouts_unsettled_session_updated_at', ['updated_at', 'id'], unique=False, postgresql_where=UNSETTLED_SESSION, sqlite_where=UNSETTLED_SESSION)


def downgrade() -> None:
    with op.batch_alter_table('checkouts', schema=None) as batch_op:
        batch_op.drop_index('ix_checkouts_unsettled_session_updated_at', postgresql_where=UNSETTLED_SESSION, sqlite_where=UNSETTLED_SESSION)
        batch_op.drop_column('provider_session_settled_at')
