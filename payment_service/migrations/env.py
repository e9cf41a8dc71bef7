"""Alembic environment: runs migrations on the connection or URL the caller configured, each in
its own transaction and, on PostgreSQL, under a short lock timeout."""

from alembic import context
from sqlalchemy import Connection, create_engine

from payment_service.db import Base
from payment_service.migrate import LOCK_TIMEOUT, set_lock_timeout
from payment_service.models import import_all_models

import_all_models()
config = context.config
target_metadata = Base.metadata


def run_migrations() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = create_engine(config.get_main_option("sqlalchemy.url"))
    try:
        with engine.connect() as connection:
            _run(connection)
            connection.commit()
    finally:
        engine.dispose()


def _run(connection: Connection) -> None:
    if connection.dialect.name != "postgresql":
        _migrate(connection)
        return
    # An ACCESS EXCLUSIVE request that waits queues every query of its table behind it: fail
    # after LOCK_TIMEOUT instead. Set for the session (and committed) so that it holds in every
    # migration's transaction; reset after, since the connection may be the caller's.
    previous = set_lock_timeout(connection, LOCK_TIMEOUT)
    connection.commit()
    try:
        _migrate(connection)
    finally:
        connection.rollback()  # what a failed migration left open; each one commits its own work
        set_lock_timeout(connection, previous)
        connection.commit()


def _migrate(connection: Connection) -> None:
    # One transaction per migration: one that commits part of its work early (a backfill in
    # batches, an index built concurrently) must not hold the locks of the ones before it.
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
