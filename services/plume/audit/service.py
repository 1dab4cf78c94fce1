"""Reading, exporting, verifying and purging chains."""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from plume.audit import chain
from plume.audit.recorder import Actor, record
from plume.audit.schemas import AuditEntryOut, Receipt
from plume.audit.signing import ReceiptSigner
from plume.models import AuditEntry, AuditHead
from plume.pagination import PageRequest
from plume.quotas.periods import PARIS


def entry_out(entry: AuditEntry) -> AuditEntryOut:
    fields: dict[str, Any] = json.loads(entry.body)
    return AuditEntryOut(
        organization_id=entry.organization_id,
        seq=entry.seq,
        occurred_at=entry.occurred_at,
        action=entry.action,
        actor=fields.get("actor") or {},
        request_id=fields.get("request_id"),
        client_address=fields.get("client_address"),
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
    return list((await session.scalars(statement)).all())


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
    buffer = io.StringIO()
    csv.writer(buffer).writerow(
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
    )
    return buffer.getvalue().encode()


def csv_header() -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer).writerow(_CSV_COLUMNS)
    return buffer.getvalue().encode()


async def export(
    session: AsyncSession, organization_id: uuid.UUID, format: str
) -> AsyncIterator[bytes]:
    if format == "csv":
        yield csv_header()
    head = await session.get(AuditHead, organization_id, populate_existing=True)
    up_to = head.seq if head is not None else None
    async for entry in chain.entries(session, organization_id, up_to=up_to):
        yield export_line(entry, format)


async def head_receipt(
    session: AsyncSession, organization_id: uuid.UUID, signer: ReceiptSigner
) -> Receipt:
    head = await session.get(AuditHead, organization_id, populate_existing=True)
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


async def hash_at(session: AsyncSession, organization_id: uuid.UUID, seq: int) -> str | None:
    return await session.scalar(
        select(AuditEntry.hash).where(
            AuditEntry.organization_id == organization_id, AuditEntry.seq == seq
        )
    )


async def chain_ids(session: AsyncSession) -> Sequence[uuid.UUID]:
    return (await session.scalars(select(AuditHead.organization_id))).all()


async def purge(session: AsyncSession, before: date) -> list[tuple[uuid.UUID, int]]:
    """Delete every chain's entries older than `before` (Paris midnight), leaving in each a
    checkpoint entry with the last purged hash, so that what remains still verifies.

    Runs as the database owner (the application role may not delete), with the
    transaction-local setting the append-only trigger requires.
    """
    cutoff = datetime(before.year, before.month, before.day, tzinfo=PARIS)
    await session.execute(text("SELECT set_config('plume.audit_purge', 'on', true)"))
    purged: list[tuple[uuid.UUID, int]] = []
    lasts = await session.execute(
        select(AuditEntry.organization_id, func.max(AuditEntry.seq), func.count())
        .where(AuditEntry.occurred_at < cutoff)
        .group_by(AuditEntry.organization_id)
    )
    for organization_id, last_seq, count in lasts.all():
        last_hash = await hash_at(session, organization_id, last_seq)
        removed = await session.execute(
            delete(AuditEntry).where(
                AuditEntry.organization_id == organization_id, AuditEntry.seq <= last_seq
            )
        )
        await record(
            session,
            organization_id=organization_id,
            action="audit.purge",
            actor=Actor.system(),
            target=("audit_chain", str(organization_id)),
            details={
                "before": before.isoformat(),
                "purged_entries": removed.rowcount,  # type: ignore[attr-defined]
                "last_purged_seq": last_seq,
                "last_purged_hash": last_hash,
            },
        )
        purged.append((organization_id, int(count)))
    return purged
