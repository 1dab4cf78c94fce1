"""Retention: every day, the drafts older than their organisation's `retention_days` are
erased (plume.drafting.erasure), approved or not — the signed act is the commune's to
archive, not Plume's. Each organisation's purge is recorded in its audit trail
(`retention.purge`, with how many drafts and the cut-off, never a text). Runs in every API
process (`Periodic`, daily) and by hand (`plume retention run [--at]`); two runs at once
skip each other's locked rows, and a run that finds nothing records nothing. The same run
forgets the audit trail's full client addresses older than `PLUME_AUDIT_ADDRESS_DAYS`, and
deletes agents' sessions that ended more than a week before."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from plume.audit.service import forget_client_addresses
from plume.audit.trail import Actor, record
from plume.config import Settings
from plume.db import TenantScope, create_engine, create_session_factory, system_sessions
from plume.drafting.erasure import erase_expired
from plume.identity.service import purge_sessions
from plume.organizations.policy import effective_policy
from plume.organizations.service import OrganizationService

logger = structlog.get_logger("plume.retention")

BATCH = 200
DEFAULT_ADDRESS_DAYS = 30
# An ended session (expired or revoked) is kept a week, for the agent's list, then deleted.
SESSIONS_KEPT_DAYS = 7
DAY_S = 24 * 3600.0


@dataclass(frozen=True, slots=True)
class Purged:
    organization_id: uuid.UUID
    slug: str
    retention_days: int
    before: datetime
    erased: int


async def _cut_offs(
    sessions: async_sessionmaker[AsyncSession], at: datetime
) -> list[tuple[uuid.UUID, str, int, datetime]]:
    """Each organisation with its retention in force and the creation date it cuts at."""
    async with sessions() as session, session.begin():
        everyone = await OrganizationService(session, TenantScope.everything()).list_all()
    # The chains from the list read once, not two reads per organisation.
    by_id = {organization.id: organization for organization in everyone}
    cut_offs = []
    for organization in everyone:
        chain = [organization]
        while chain[0].parent_id is not None and chain[0].parent_id in by_id:
            chain.insert(0, by_id[chain[0].parent_id])
        days = effective_policy([level.policy for level in chain]).retention_days
        cut_offs.append((organization.id, organization.slug, days, at - timedelta(days=days)))
    return cut_offs


async def forget_addresses(
    session_factory: async_sessionmaker[AsyncSession], before: datetime
) -> int:
    """Forget the audit trail's full client addresses recorded before `before`."""
    async with system_sessions(session_factory)() as session, session.begin():
        return await forget_client_addresses(session, before)


async def purge(
    session_factory: async_sessionmaker[AsyncSession],
    at: datetime | None = None,
    address_days: int = DEFAULT_ADDRESS_DAYS,
) -> list[Purged]:
    """Erase, organisation by organisation and in batches (one transaction each), the drafts
    created before `at` minus the organisation's retention; returns what was erased. The
    audit trail's full client addresses older than `address_days` are forgotten too."""
    at = at or datetime.now(UTC)
    forgotten = await forget_addresses(session_factory, at - timedelta(days=address_days))
    if forgotten:
        logger.info("audit_addresses_forgotten", count=forgotten)
    async with system_sessions(session_factory)() as session, session.begin():
        ended = await purge_sessions(session, at - timedelta(days=SESSIONS_KEPT_DAYS))
    if ended:
        logger.info("agent_sessions_purged", count=ended)
    sessions = system_sessions(session_factory)
    done: list[Purged] = []
    for organization_id, slug, days, before in await _cut_offs(sessions, at):
        erased = 0
        while True:
            async with sessions() as session, session.begin():
                batch = await erase_expired(
                    session, organization_id, before, datetime.now(UTC), BATCH
                )
                if batch:
                    await record(
                        session,
                        organization_id=organization_id,
                        action="retention.purge",
                        actor=Actor.system(),
                        details={
                            "erased": len(batch),
                            "retention_days": days,
                            "created_before": before.isoformat(),
                            "drafts": [str(item.draft_id) for item in batch],
                        },
                    )
            erased += len(batch)
            if len(batch) < BATCH:
                break
        if erased:
            logger.info("retention_purged", organization=slug, erased=erased)
            done.append(Purged(organization_id, slug, days, before, erased))
    return done


async def run_once(settings: Settings, at: datetime | None) -> list[str]:
    """`plume retention run`: one purge, one line per organisation that had drafts to erase."""
    engine = create_engine(settings.require_database_url(), pool_size=1)
    try:
        purged = await purge(create_session_factory(engine), at, settings.audit_address_days)
    finally:
        await engine.dispose()
    return [
        f"{p.slug}\t{p.erased} drafts erased (created before {p.before:%Y-%m-%d %H:%M} UTC, "
        f"retention {p.retention_days} days)"
        for p in purged
    ] or ["nothing to erase"]
