"""Appending to a chain and verifying one. The hashing rule, which docs/audit.md states for
outsiders, is:

    hash = SHA-256( f"{seq}\\n{prev_hash}\\n{body}" as UTF-8 ), hex
    body = JSON of the entry, keys sorted, separators "," and ":", non-ASCII kept as is
    prev_hash of the first entry = 64 zeros

Appends are one statement: the chain's head row is upserted (which locks it, serialising
appends to one chain), the new hash is computed by PostgreSQL from the old head, and the
entry is inserted from the head's new values — all in the caller's transaction, so an
action that rolls back leaves no entry.
"""

from __future__ import annotations

import functools
import hashlib
import json
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import TextClause, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from plume.models import AuditEntry, AuditHead
from plume.provider_calls import DeferredCall, deferred_ctes
from plume.usage.recorder import USAGE_COLUMNS

GENESIS = "0" * 64

# {extra} adds common table expressions before the chain's: the usage record and the calls
# hooks deferred to this statement (see plume.provider_calls.DeferredCall); {joined} makes
# PostgreSQL evaluate those calls (an unreferenced SELECT in WITH would not run).
_APPEND_SQL = """
WITH {extra}input AS (
    SELECT CAST(:body AS text) AS body, CAST(:genesis AS text) AS genesis
),
head AS (
    INSERT INTO audit_heads AS h (organization_id, seq, prev_hash, hash)
    SELECT :organization_id, 1, input.genesis,
           encode(sha256(convert_to('1' || E'\\n' || input.genesis || E'\\n' || input.body,
                                    'UTF8')), 'hex')
    FROM input
    ON CONFLICT (organization_id) DO UPDATE
        SET seq = h.seq + 1,
            prev_hash = h.hash,
            hash = encode(sha256(convert_to(
                (h.seq + 1)::text || E'\\n' || h.hash || E'\\n' || CAST(:body AS text),
                'UTF8')), 'hex')
    RETURNING h.seq, h.prev_hash, h.hash
)
INSERT INTO audit_entries
    (organization_id, seq, occurred_at, action, actor_key_id, actor_role, body, prev_hash, hash)
SELECT :organization_id, head.seq, :occurred_at, :action, :actor_key_id, :actor_role,
       input.body, head.prev_hash, head.hash
FROM head, input{joined}
RETURNING seq, hash
"""


@functools.cache
def _append_statement(with_usage: bool, calls: tuple[str, ...]) -> TextClause:
    """Built from the constant column names and calls above, never from input."""
    ctes, names = deferred_ctes(calls)
    if with_usage:
        columns = ", ".join(USAGE_COLUMNS)
        values = ", ".join(f":usage_{column}" for column in USAGE_COLUMNS)
        usage = f"usage AS (INSERT INTO usage_records ({columns}) VALUES ({values}))"  # noqa: S608
        ctes.insert(0, usage)
    extra = "".join(f"{cte},\n" for cte in ctes)
    joined = "".join(f", {name}" for name in names)
    return text(_APPEND_SQL.format(extra=extra, joined=joined))


def canonical(fields: dict[str, Any]) -> str:
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def entry_hash(seq: int, prev_hash: str, body: str) -> str:
    return hashlib.sha256(f"{seq}\n{prev_hash}\n{body}".encode()).hexdigest()


async def append(
    session: AsyncSession,
    *,
    organization_id: uuid.UUID,
    occurred_at: datetime,
    action: str,
    actor_key_id: uuid.UUID | None,
    actor_role: str | None,
    body: str,
    usage: dict[str, Any] | None = None,
    calls: Sequence[DeferredCall] = (),
) -> tuple[int, str]:
    """Append the entry; with `usage`, insert that usage record in the same statement, and
    evaluate the deferred `calls` there too."""
    parameters = {
        "organization_id": organization_id,
        "occurred_at": occurred_at,
        "action": action,
        "actor_key_id": actor_key_id,
        "actor_role": actor_role,
        "body": body,
        "genesis": GENESIS,
    }
    if usage is not None:
        parameters.update({f"usage_{column}": usage[column] for column in USAGE_COLUMNS})
    for call in calls:
        parameters.update(call.parameters)
    statement = _append_statement(usage is not None, tuple(call.sql for call in calls))
    row = (await session.execute(statement, parameters)).one()
    return int(row[0]), str(row[1])


@dataclass(frozen=True, slots=True)
class Verification:
    valid: bool
    checked: int
    first_invalid_seq: int | None


def _agrees(entry: AuditEntry, fields: dict[str, Any]) -> bool:
    """The filter columns say what the hashed body says."""
    actor = fields.get("actor") or {}
    return (
        fields.get("action") == entry.action
        and fields.get("organization_id") == str(entry.organization_id)
        and actor.get("key_id") == (str(entry.actor_key_id) if entry.actor_key_id else None)
        and actor.get("role") == entry.actor_role
        and fields.get("occurred_at") == format_time(entry.occurred_at)
    )


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with microseconds, as in the hashed body."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


async def entries(
    session: AsyncSession,
    organization_id: uuid.UUID,
    batch: int = 1000,
    up_to: int | None = None,
) -> AsyncIterator[AuditEntry]:
    """The chain in order, read in batches (a chain may hold millions of entries)."""
    after = 0
    while True:
        statement = (
            select(AuditEntry)
            .where(AuditEntry.organization_id == organization_id, AuditEntry.seq > after)
            .order_by(AuditEntry.seq)
            .limit(batch)
        )
        if up_to is not None:
            statement = statement.where(AuditEntry.seq <= up_to)
        rows = (await session.scalars(statement)).all()
        for row in rows:
            yield row
        if len(rows) < batch:
            return
        after = rows[-1].seq


def _checkpoint(fields: dict[str, Any]) -> tuple[int, str] | None:
    if fields.get("action") != "audit.purge":
        return None
    details = fields.get("details") or {}
    seq, last = details.get("last_purged_seq"), details.get("last_purged_hash")
    return (int(seq), str(last)) if seq is not None and last is not None else None


async def verify(session: AsyncSession, organization_id: uuid.UUID) -> Verification:
    """Walk the chain: contiguous sequence numbers, each entry's prev_hash the previous
    entry's hash, each hash recomputed from its body, the columns agreeing with the body,
    and the head row pointing at the last entry. After a purge, the first remaining entry
    must link to the hash a purge checkpoint recorded."""
    # The head first: entries appended while the walk runs are beyond it, not "extra".
    head = await session.get(AuditHead, organization_id, populate_existing=True)
    checkpoints: dict[int, str] = {}
    checked = 0
    expected_seq: int | None = None
    expected_prev: str | None = None
    first_seq: int | None = None
    first_prev: str | None = None
    last: AuditEntry | None = None
    async for entry in entries(session, organization_id, up_to=head.seq if head else None):
        if expected_seq is None:
            first_seq, first_prev = entry.seq, entry.prev_hash
            expected_seq = entry.seq
            expected_prev = GENESIS if entry.seq == 1 else entry.prev_hash
        if entry.seq != expected_seq:
            return Verification(False, checked, expected_seq)
        try:
            fields = json.loads(entry.body)
        except ValueError:
            return Verification(False, checked, entry.seq)
        if (
            entry.prev_hash != expected_prev
            or entry_hash(entry.seq, entry.prev_hash, entry.body) != entry.hash
            or not isinstance(fields, dict)
            or not _agrees(entry, fields)
        ):
            return Verification(False, checked, entry.seq)
        point = _checkpoint(fields)
        if point is not None:
            checkpoints[point[0]] = point[1]
        checked += 1
        expected_seq, expected_prev = entry.seq + 1, entry.hash
        last = entry
    if first_seq is not None and first_seq > 1 and checkpoints.get(first_seq - 1) != first_prev:
        # Entries before the first one were removed with no purge checkpoint to account for
        # them: the chain is unverifiable from the first entry no checkpoint covers.
        covered = max((seq for seq in checkpoints if seq < first_seq), default=0)
        return Verification(False, checked, covered + 1)
    if head is not None and (last is None or head.seq != last.seq or head.hash != last.hash):
        # Entries at the end were removed behind the application's back.
        return Verification(False, checked, (last.seq + 1) if last is not None else 1)
    return Verification(True, checked, None)
