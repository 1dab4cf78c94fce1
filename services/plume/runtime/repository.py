"""All SQL of the runtime: which migration the database is at."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

_CURRENT = text("SELECT version_num FROM alembic_version")


class MigrationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def current_revision(self) -> str | None:
        current: str | None = await self.session.scalar(_CURRENT)
        return current
