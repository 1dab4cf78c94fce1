"""Reading, exporting, verifying and purging chains."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from plume.audit import chain
from plume.audit.repository import AuditRepository
from plume.audit.schemas import AuditEntryOut, Receipt
from plume.audit.signing import ReceiptSigner
from plume.audit.trail import Actor, record
from plume.dates import PARIS
from plume.db import TenantScope, enter_tenant_context
from plume.metrics import registry
from plume.models import AuditEntry
from plume.organizations.service import OrganizationService
from plume.web.pagination import PageRequest
from plume.web.spreadsheet import csv_line


def entry_out(entry: AuditEntry, client_address: str | None = None) -> AuditEntryOut:
    """`client_address` is the full address while it is kept, else the body's network."""
    fields: dict[str, Any] = json.loads(entry.body)
    return AuditEntryOut(
        organization_id=entry.organization_id,
        seq=entry.seq,
        occurred_at=entry.occurred_at,
        action=entry.action,
        actor=fields.get("actor") or {},
        request_id=fields.get("request_id"),
        client_address=client_address or fields.get("client_address"),
        outcome=fields.get("outcome"),
        target=fields.get("target"),
        details=fields.get("details") or {},
        prev_hash=entry.prev_hash,
        hash=entry.hash,
    )


async def list_page(
    session: AsyncSession,
    organization_id: uuid.UUID,
    page: PageRequest,
    *,
    start: datetime,
    end: datetime,
    action: str | None,
    actor: uuid.UUID | None,
) -> list[AuditEntry]:
    """Newest first; the cursor carries the last sequence number seen."""
    return await AuditRepository(session).list_page(
        organization_id, page, start=start, end=end, action=action, actor=actor
    )


async def client_addresses(
    session: AsyncSession, organization_id: uuid.UUID, seqs: list[int]
) -> dict[int, str]:
    return await AuditRepository(session).client_addresses(organization_id, seqs)


async def forget_client_addresses(session: AsyncSession, before: datetime) -> int:
    """Delete the full client addresses recorded before `before`, in every chain of the
    session's scope (the system's, for the daily purge)."""
    return await AuditRepository(session).forget_client_addresses(before)


def cursor_key(entry: AuditEntry) -> tuple[datetime, uuid.UUID]:
    return entry.occurred_at, uuid.UUID(int=entry.seq)


_CSV_COLUMNS = [
    "seq",
    "occurred_at",
    "action",
    "actor_key_id",
    "actor_role",
    "outcome",
    "target_type",
    "target_id",
    "request_id",
    "client_address",
    "details",
    "prev_hash",
    "hash",
    "body",
]


def export_line(entry: AuditEntry, format: str) -> bytes:
    """One entry as a JSON line (exactly what verification needs) or a CSV row."""
    if format == "jsonl":
        line: dict[str, Any] = {
            "seq": entry.seq,
            "prev_hash": entry.prev_hash,
            "hash": entry.hash,
            "body": entry.body,
        }
        return (json.dumps(line, ensure_ascii=False) + "\n").encode()
    fields = json.loads(entry.body)
    target = fields.get("target") or {}
    return csv_line(
        [
            entry.seq,
            fields.get("occurred_at"),
            entry.action,
            (fields.get("actor") or {}).get("key_id") or "",
            entry.actor_role or "",
            fields.get("outcome") or "",
            target.get("type", ""),
            target.get("id", ""),
            fields.get("request_id") or "",
            fields.get("client_address") or "",
            json.dumps(fields.get("details") or {}, ensure_ascii=False, sort_keys=True),
            entry.prev_hash,
            entry.hash,
            entry.body,
        ]
    ).encode()


def csv_header() -> bytes:
    return csv_line(_CSV_COLUMNS).encode()


# Entries read per transaction of an export (about half a megabyte of JSON lines).
EXPORT_BATCH = 1000


async def export(
    session_factory: async_sessionmaker[AsyncSession],
    scope: TenantScope,
    organization_id: uuid.UUID,
    format: str,
    batch: int = EXPORT_BATCH,
) -> AsyncIterator[bytes]:
    """The chain as a streamed body, up to the head read first (entries appended meanwhile
    belong to a later export). Each batch is read in a short transaction of its own, and
    sent once it has ended: a client reading slowly holds no connection and no transaction
    while it reads (the request's own transaction has ended when the body is sent)."""
    if format == "csv":
        yield csv_header()
    async with session_factory() as session, session.begin():
        await enter_tenant_context(session, scope)
        head = await AuditRepository(session).head(organization_id)
        after, up_to = 0, head.seq if head is not None else 0
    while after < up_to:
        async with session_factory() as session, session.begin():
            await enter_tenant_context(session, scope)
            rows = await AuditRepository(session).entries_after(
                organization_id, after, limit=batch, up_to=up_to
            )
            lines = b"".join(export_line(entry, format) for entry in rows)
            after = rows[-1].seq if rows else up_to
        if lines:
            yield lines


async def head_receipt(
    session: AsyncSession, organization_id: uuid.UUID, signer: ReceiptSigner
) -> Receipt:
    head = await AuditRepository(session).head(organization_id)
    statement = {
        "organization_id": str(organization_id),
        "seq": head.seq if head else 0,
        "hash": head.hash if head else chain.GENESIS,
        "signed_at": chain.format_time(datetime.now(UTC)),
    }
    return Receipt(
        **statement,
        key_id=signer.key_id,
        algorithm="Ed25519",
        signature=signer.sign(statement),
    )


async def verify(
    session: AsyncSession, organization_id: uuid.UUID, scope: TenantScope
) -> chain.Verification:
    """Verify one chain; a break is counted (plume_audit_verification_failures_total) for
    the chain's organisation, which `scope` (the caller's) lets the session see."""
    result = await chain.verify(session, organization_id)
    if not result.valid:
        organization = await OrganizationService(session, scope).find(organization_id)
        slug = organization.slug if organization is not None else "unknown"
        registry.AUDIT_VERIFICATION_FAILURES.labels(slug).inc()
    return result


async def hash_at(session: AsyncSession, organization_id: uuid.UUID, seq: int) -> str | None:
    return await AuditRepository(session).hash_at(organization_id, seq)


async def chain_ids(session: AsyncSession) -> Sequence[uuid.UUID]:
    return await AuditRepository(session).chain_ids()


async def purge(session: AsyncSession, before: date) -> list[tuple[uuid.UUID, int]]:
    """Delete every chain's entries older than `before` (Paris midnight), leaving in each a
    checkpoint entry with the last purged hash, so that what remains still verifies.

    Runs as the database owner (the application role may not delete).
    """
    cutoff = datetime(before.year, before.month, before.day, tzinfo=PARIS)
    repository = AuditRepository(session)
    await repository.allow_purge()
    purged: list[tuple[uuid.UUID, int]] = []
    for organization_id, last_seq, count in await repository.purgeable(cutoff):
        last_hash = await repository.hash_at(organization_id, last_seq)
        removed = await repository.delete_up_to(organization_id, last_seq)
        await record(
            session,
            organization_id=organization_id,
            action="audit.purge",
            actor=Actor.system(),
            target=("audit_chain", str(organization_id)),
            details={
                "before": before.isoformat(),
                "purged_entries": removed,
                "last_purged_seq": last_seq,
                "last_purged_hash": last_hash,
            },
        )
        purged.append((organization_id, count))
    return purged
