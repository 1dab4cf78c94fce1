"""All SQL about drafts, scoped to the caller; and the synthèse job queue."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Text, cast, func, select, text, update
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

    async def forget_replays(self, organization_id: uuid.UUID, draft_id: uuid.UUID) -> int:
        """Delete the stored answers of Idempotency-Key retries that hold this draft (its
        text with them); returns how many."""
        result = await self.session.execute(
            _FORGET_REPLAYS, {"organization_id": organization_id, "draft_id": str(draft_id)}
        )
        return int(getattr(result, "rowcount", 0) or 0)

    async def expired(
        self, organization_id: uuid.UUID, before: datetime, limit: int
    ) -> Sequence[Draft]:
        """Drafts of an organisation created before `before` whose texts are still kept
        (a synthèse being written is left to finish), oldest first, locked."""
        statement = (
            select(Draft)
            .where(
                Draft.organization_id == organization_id,
                self.scope.clause(Draft.organization_id),
                Draft.created_at < before,
                Draft.status.not_in([DraftStatus.ERASED, DraftStatus.PROCESSING]),
            )
            .order_by(Draft.created_at, Draft.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return (await self.session.execute(statement)).scalars().all()


# An idempotent replay of POST /v1/drafts stores the answer, the draft's id and text in it.
_FORGET_REPLAYS = text("""
DELETE FROM idempotency_keys
WHERE organization_id = :organization_id
  AND body IS NOT NULL
  AND position(convert_to(:draft_id, 'UTF8') IN body) > 0
""")


# The next job: each organisation's oldest pending job, and of those the one whose
# organisation's last claim is the oldest (never claimed first), so that organisations take
# turns however many jobs one of them queued. The conditions are repeated on the row locked:
# a job claimed by another process between the two reads is then skipped, not taken twice.
_NEXT_JOB = text("""
WITH candidates AS (
    SELECT DISTINCT ON (organization_id) id, organization_id, created_at
    FROM drafts
    WHERE status = 'processing' AND (locked_until IS NULL OR locked_until < now())
    ORDER BY organization_id, created_at, id
)
SELECT d.id, d.organization_id
FROM candidates c JOIN drafts d ON d.id = c.id
WHERE d.status = 'processing' AND (d.locked_until IS NULL OR d.locked_until < now())
ORDER BY (SELECT max(t.claimed_at) FROM drafts t
          WHERE t.organization_id = c.organization_id AND t.claimed_at IS NOT NULL)
         NULLS FIRST,
         c.created_at, c.id
LIMIT 1
FOR UPDATE OF d SKIP LOCKED
""")


# The queue's size for the metrics: jobs nobody holds (new, given back, or whose lease
# expired) and jobs held, and how long the oldest of the first has waited.
_BACKLOG = text("""
SELECT count(*) FILTER (WHERE locked_until IS NULL OR locked_until < now()),
       count(*) FILTER (WHERE locked_until >= now()),
       coalesce(extract(epoch FROM now() - min(created_at)
                FILTER (WHERE locked_until IS NULL OR locked_until < now())), 0)
FROM drafts
WHERE status = 'processing'
""")


@dataclass(frozen=True, slots=True)
class Backlog:
    queued: int
    running: int
    oldest_queued_s: float


@dataclass(frozen=True, slots=True)
class Lease:
    """A claimed job: which, whose, and the token that proves the lease is this worker's."""

    draft_id: uuid.UUID
    organization_id: uuid.UUID
    token: uuid.UUID


class SyntheseJobQueue:
    """Pending synthèses, claimed by any API process. Runs with the system's scope: a job
    names its tenant, and the work on it enters that tenant's context."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def backlog(self) -> Backlog:
        queued, running, oldest = (await self.session.execute(_BACKLOG)).one()
        return Backlog(int(queued), int(running), float(oldest))

    async def claim(self, lease: timedelta) -> Lease | None:
        """Take the next job nobody holds (organisations in turn; SKIP LOCKED lets
        processes share), with a lease of this worker's own."""
        row = (await self.session.execute(_NEXT_JOB)).one_or_none()
        if row is None:
            return None
        token = uuid.uuid4()
        await self.session.execute(
            update(Draft)
            .where(Draft.id == row[0])
            .values(
                locked_until=func.now() + lease,
                attempts=Draft.attempts + 1,
                lease_token=token,
                # The claim's own time, not its transaction's: turns are ordered by it.
                claimed_at=func.clock_timestamp(),
            )
        )
        return Lease(row[0], row[1], token)

    async def renew(self, held: Lease, lease: timedelta) -> bool:
        """Extend the lease; False if it is no longer this worker's (taken over, or the job
        ended)."""
        return await self._update(held, locked_until=func.now() + lease)

    async def extend(
        self,
        held: Lease,
        lease: timedelta,
        progress: dict[str, int],
        summarised: tuple[str, str] | None = None,
    ) -> bool:
        """Renew the lease and record the job's progress, and the summary of the part just
        done (added to the others); False as for `renew`."""
        values: dict[str, Any] = {"locked_until": func.now() + lease, "progress": progress}
        if summarised is not None:
            digest, summary = summarised
            added = func.jsonb_build_object(cast(digest, Text), cast(summary, Text))
            kept = func.coalesce(Draft.part_summaries, func.jsonb_build_object())
            values["part_summaries"] = kept.op("||")(added)
        return await self._update(held, **values)

    async def release(self, held: Lease) -> bool:
        """Give the job back at once (its worker is stopping): another process takes it."""
        return await self._update(held, locked_until=None, lease_token=None)

    async def _update(self, held: Lease, **values: Any) -> bool:
        updated = await self.session.execute(
            update(Draft)
            .where(
                Draft.id == held.draft_id,
                Draft.status == DraftStatus.PROCESSING,
                Draft.lease_token == held.token,
            )
            .values(**values)
            .returning(Draft.id)
        )
        return updated.one_or_none() is not None
