"""The schema is the migrations' work, and the models agree with it."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine

import plume.models  # noqa: F401
from plume.db import Base, include_in_autogenerate
from plume.runtime.migrations import head_revision
from tests.support.database import DatabaseServer


def test_autogenerate_finds_no_drift(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "include_object": include_in_autogenerate}
            )
            assert compare_metadata(context, Base.metadata) == []
    finally:
        engine.dispose()


def test_migrations_go_down_and_up_again(database_server: DatabaseServer) -> None:
    from alembic import command

    from plume.runtime.migrations import alembic_config

    url = database_server.create()
    config = alembic_config(url)
    command.downgrade(config, "base")
    command.upgrade(config, "head")
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            assert MigrationContext.configure(connection).get_current_revision() == head_revision()
    finally:
        engine.dispose()
