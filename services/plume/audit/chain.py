"""The chain's rule, and verifying a chain. The hashing rule, which docs/audit.md states
for outsiders and `audit/sql/audit_append.sql` applies when appending, is:

    hash = SHA-256( f"{seq}\\n{prev_hash}\\n{body}" as UTF-8 ), hex
    body = JSON of the entry, keys sorted, separators "," and ":", non-ASCII kept as is
    prev_hash of the first entry = 64 zeros
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from plume.audit.repository import AuditRepository
from plume.models import AuditEntry

GENESIS = "0" * 64


def canonical(fields: dict[str, Any]) -> str:
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def entry_hash(seq: int, prev_hash: str, body: str) -> str:
    return hashlib.sha256(f"{seq}\n{prev_hash}\n{body}".encode()).hexdigest()


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
    repository = AuditRepository(session)
    head = await repository.head(organization_id)
    checkpoints: dict[int, str] = {}
    checked = 0
    expected_seq: int | None = None
    expected_prev: str | None = None
    first_seq: int | None = None
    first_prev: str | None = None
    last: AuditEntry | None = None
    async for entry in repository.entries(organization_id, up_to=head.seq if head else None):
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
