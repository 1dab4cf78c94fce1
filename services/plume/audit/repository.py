"""All SQL about the audit trail.

Appending is one call of `audit_append` (source: `audit/sql/audit_append.sql`): the chain's
head row is upserted (which locks it, serialising appends to one chain), the new hash is
computed by PostgreSQL from the old head, and the entry inserted from the head's new values
— in the caller's transaction, so an action that rolls back leaves no entry. It is the only
way to write a chain: the application role may read entries and heads, not write them, and
the function appends only to a chain of the transaction's scope.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from plume.models import AuditClientAddress, AuditEntry, AuditHead
from plume.web.pagination import PageRequest

_APPEND = text(
    "SELECT entry_seq, entry_hash FROM audit_append(CAST(:organization_id AS uuid),"
    " CAST(:occurred_at AS timestamptz), CAST(:action AS text), CAST(:actor_key_id AS uuid),"
    " CAST(:actor_role AS text), CAST(:body AS text))"
)
# `plume audit purge` runs as the tables' owner (never the application role, which may not
# delete), with the transaction-local setting the append-only trigger requires of the owner
# before it lets entries be deleted, and the system's scope, without which row-level
# security (forced: the owner is subject to it) shows the owner no entry.
_ALLOW_PURGE = text(
    "SELECT set_config('plume.audit_purge', 'on', true),"
    " set_config('plume.all_organizations', 'on', true)"
)


@dataclass(frozen=True, slots=True)
class NewEntry:
    """An entry to append: its filter columns and its body, the canonical JSON that is
    hashed (docs/audit.md)."""

    organization_id: uuid.UUID
    occurred_at: datetime
    action: str
    actor_key_id: uuid.UUID | None
    actor_role: str
    body: str
    # The caller's full address, kept apart from the hashed body (which holds its network).
    client_address: str | None = None

    def parameters(self) -> dict[str, Any]:
        return {
            "organization_id": self.organization_id,
            "occurred_at": self.occurred_at,
            "action": self.action,
            "actor_key_id": self.actor_key_id,
            "actor_role": self.actor_role,
            "body": self.body,
        }


class AuditRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def append(self, entry: NewEntry) -> tuple[int, str]:
        row = (await self.session.execute(_APPEND, entry.parameters())).one()
        seq, entry_hash = int(row[0]), str(row[1])
        if entry.client_address:
            self.session.add(
                AuditClientAddress(
                    organization_id=entry.organization_id,
                    seq=seq,
                    client_address=entry.client_address,
                    recorded_at=entry.occurred_at,
                )
            )
            await self.session.flush()
        return seq, entry_hash

    async def client_addresses(
        self, organization_id: uuid.UUID, seqs: Sequence[int]
    ) -> dict[int, str]:
        """The full addresses still kept for these entries of one chain."""
        if not seqs:
            return {}
        rows = await self.session.execute(
            select(AuditClientAddress.seq, AuditClientAddress.client_address).where(
                AuditClientAddress.organization_id == organization_id,
                AuditClientAddress.seq.in_(list(seqs)),
            )
        )
        return {int(seq): str(address) for seq, address in rows.all()}

    async def forget_client_addresses(self, before: datetime) -> int:
        """Delete the full addresses recorded before `before` (the networks stay hashed)."""
        result = await self.session.execute(
            delete(AuditClientAddress).where(AuditClientAddress.recorded_at < before)
        )
        return int(getattr(result, "rowcount", 0) or 0)

    async def head(self, organization_id: uuid.UUID) -> AuditHead | None:
        """The chain's head as it is now (not as the session last saw it)."""
        return await self.session.get(AuditHead, organization_id, populate_existing=True)

    async def entries(
        self, organization_id: uuid.UUID, batch: int = 1000, up_to: int | None = None
    ) -> AsyncIterator[AuditEntry]:
        """The chain in order, read in batches (a chain may hold millions of entries)."""
        after = 0
        while True:
            rows = await self.entries_after(organization_id, after, limit=batch, up_to=up_to)
            for row in rows:
                yield row
            if len(rows) < batch:
                return
            after = rows[-1].seq

    async def entries_after(
        self, organization_id: uuid.UUID, after: int, *, limit: int, up_to: int | None = None
    ) -> list[AuditEntry]:
        """One batch of the chain in order: the `limit` entries after `after` (keyset), up
        to `up_to` if given."""
        statement = (
            select(AuditEntry)
            .where(AuditEntry.organization_id == organization_id, AuditEntry.seq > after)
            .order_by(AuditEntry.seq)
            .limit(limit)
        )
        if up_to is not None:
            statement = statement.where(AuditEntry.seq <= up_to)
        return list((await self.session.scalars(statement)).all())

    async def list_page(
        self,
        organization_id: uuid.UUID,
        page: PageRequest,
        *,
        start: datetime,
        end: datetime,
        action: str | None,
        actor: uuid.UUID | None,
    ) -> list[AuditEntry]:
        """Newest first; the cursor carries the last sequence number seen."""
        statement = select(AuditEntry).where(
            AuditEntry.organization_id == organization_id,
            AuditEntry.occurred_at >= start,
            AuditEntry.occurred_at < end,
        )
        if action is not None:
            statement = statement.where(AuditEntry.action == action)
        if actor is not None:
            statement = statement.where(AuditEntry.actor_key_id == actor)
        if page.after is not None:
            statement = statement.where(AuditEntry.seq < page.after[1].int)
        statement = statement.order_by(AuditEntry.seq.desc()).limit(page.limit + 1)
        return list((await self.session.scalars(statement)).all())

    async def hash_at(self, organization_id: uuid.UUID, seq: int) -> str | None:
        return await self.session.scalar(
            select(AuditEntry.hash).where(
                AuditEntry.organization_id == organization_id, AuditEntry.seq == seq
            )
        )

    async def chain_ids(self) -> Sequence[uuid.UUID]:
        return (await self.session.scalars(select(AuditHead.organization_id))).all()

    async def allow_purge(self) -> None:
        await self.session.execute(_ALLOW_PURGE)

    async def purgeable(self, cutoff: datetime) -> list[tuple[uuid.UUID, int, int]]:
        """Per chain with entries before `cutoff`: (organisation, last such seq, count)."""
        result = await self.session.execute(
            select(AuditEntry.organization_id, func.max(AuditEntry.seq), func.count())
            .where(AuditEntry.occurred_at < cutoff)
            .group_by(AuditEntry.organization_id)
        )
        return [(organization, int(last), int(count)) for organization, last, count in result]

    async def delete_up_to(self, organization_id: uuid.UUID, seq: int) -> int:
        removed = await self.session.execute(
            delete(AuditEntry).where(
                AuditEntry.organization_id == organization_id, AuditEntry.seq <= seq
            )
        )
        return int(removed.rowcount)  # type: ignore[attr-defined]
