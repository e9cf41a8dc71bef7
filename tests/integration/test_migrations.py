"""The schema comes from Alembic only, and the models agree with it."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from payment_service.db import Base
from payment_service.models import import_all_models


def test_models_and_migrations_agree(db):
    import_all_models()
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    assert diff == []


def test_upgrade_is_repeatable(database_url):
    from payment_service.migrate import upgrade

    upgrade(database_url)  # already at head: a no-op, not an error
