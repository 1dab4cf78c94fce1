"""Apply and inspect the Alembic migrations shipped in the repository's migrations/ folder."""

from __future__ import annotations

import functools
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncSession

from plume.runtime.repository import MigrationRepository

PROJECT_ROOT = Path(__file__).resolve().parents[3]


def alembic_config(database_url: str | None = None) -> Config:
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    if database_url is not None:
        config.attributes["database_url"] = database_url
    return config


@functools.cache
def head_revision() -> str | None:
    """The newest revision shipped (read once per process: parsing every script is slow)."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def upgrade(database_url: str) -> None:
    command.upgrade(alembic_config(database_url), "head")


async def current_revision(session: AsyncSession) -> str | None:
    """The revision the database is at."""
    return await MigrationRepository(session).current_revision()
