"""All SQL about drafts, scoped to the caller; and the synthèse job queue."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from plume.db import TenantScope
from plume.models import Draft, DraftStatus
from plume.web.pagination import PageRequest, paginate


class DraftRepository:
    def __init__(self, session: AsyncSession, scope: TenantScope) -> None:
        self.session = session
        self.scope = scope

    async def get(self, draft_id: uuid.UUID, *, for_update: bool = False) -> Draft | None:
        statement = select(Draft).where(
            Draft.id == draft_id, self.scope.clause(Draft.organization_id)
        )
        if for_update:
            statement = statement.with_for_update()
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def list_page(
        self,
        organization_ids: Sequence[uuid.UUID],
        page: PageRequest,
        *,
        kind: str | None = None,
        status: DraftStatus | None = None,
    ) -> Sequence[Draft]:
        statement = select(Draft).where(
            Draft.organization_id.in_(organization_ids), self.scope.clause(Draft.organization_id)
        )
        if kind is not None:
            statement = statement.where(Draft.kind == kind)
        if status is not None:
            statement = statement.where(Draft.status == status)
        statement = paginate(statement, page, Draft.created_at, Draft.id)
        return (await self.session.execute(statement)).scalars().all()

    async def add(self, draft: Draft) -> Draft:
        self.session.add(draft)
        await self.session.flush()
        await self.session.refresh(draft)
        return draft

    async def save(self, draft: Draft) -> Draft:
        await self.session.flush()
        await self.session.refresh(draft)
        return draft


class SyntheseJobQueue:
    """Pending synthèses, claimed by any API process. Runs with the system's scope: a job
    names its tenant, and the work on it enters that tenant's context."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def claim(self, lease: timedelta) -> tuple[uuid.UUID, uuid.UUID] | None:
        """Take the oldest pending job nobody holds; SKIP LOCKED lets processes share."""
        statement = (
            select(Draft.id, Draft.organization_id)
            .where(
                Draft.status == DraftStatus.PROCESSING,
                or_(Draft.locked_until.is_(None), Draft.locked_until < func.now()),
            )
            .order_by(Draft.created_at)
            .limit(1)
            .with_for_update(skip_locked=True)
        )
        row = (await self.session.execute(statement)).one_or_none()
        if row is None:
            return None
        await self.session.execute(
            update(Draft)
            .where(Draft.id == row[0])
            .values(locked_until=func.now() + lease, attempts=Draft.attempts + 1)
        )
        return row[0], row[1]

    async def renew(self, draft_id: uuid.UUID, lease: timedelta) -> None:
        await self.session.execute(
            update(Draft)
            .where(Draft.id == draft_id, Draft.status == DraftStatus.PROCESSING)
            .values(locked_until=func.now() + lease)
        )

    async def extend(self, draft_id: uuid.UUID, lease: timedelta, progress: dict[str, int]) -> None:
        await self.session.execute(
            update(Draft)
            .where(Draft.id == draft_id, Draft.status == DraftStatus.PROCESSING)
            .values(locked_until=func.now() + lease, progress=progress)
        )
