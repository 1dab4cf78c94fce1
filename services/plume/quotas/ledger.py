"""The quota ledger: reserve, settle, extend, sweep. Each is one call of a SECURITY DEFINER
function, atomic in PostgreSQL, with no read-then-write race; the application role only
reads the ledger.

The functions' source, with the rules they enforce, is in plume/quotas/sql/: one file per
function (quota_reserve.sql, quota_settle.sql, quota_extend.sql, quota_release_expired.sql,
and quota_ledger_copy_limits.sql, the trigger that copies each organisation's limits into
its ledger row). Migrations hold frozen copies of them (2026-12-06-0900 for these texts);
tests/test_sql_sources.py checks that the migrated database's functions are the files.

Neither reserving nor settling costs a round trip of its own on a provider-backed request:
the reservation is read in the statement that sets the tenant context of the request's
first transaction, and `settle_call` is evaluated inside the statement that writes the
request's usage record (see plume.provider_calls).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, case, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from plume.db import DriverStatement
from plume.models import Quota, QuotaCounter
from plume.provider_calls import DeferredCall, run_deferred
from plume.quotas.periods import windows

# A row source: read together with the tenant context (see plume.db.enter_tenant_context).
_RESERVE = (
    "quota_reserve(%(id)s, %(organization_id)s, %(now)s, %(tokens)s::numeric,"
    " %(cost)s::numeric, %(expires_at)s)"
)

# Evaluated inside another statement: its parameters are prefixed to stay apart.
SETTLE_CALL = (
    "quota_settle(CAST(:quota_id AS uuid), CAST(:quota_requests AS numeric),"
    " CAST(:quota_tokens AS numeric), CAST(:quota_cost AS numeric),"
    " CAST(:quota_organization AS uuid), CAST(:quota_now AS timestamptz))"
)
_EXTEND = text("SELECT quota_extend(:id, :expires_at)")
_RELEASE_EXPIRED = text("SELECT quota_release_expired(:now, :batch)")


@dataclass(frozen=True, slots=True)
class Reserved:
    """What a reservation answers: the quota that refused it (the one that stays shut the
    longest), or else the quota it left tightest."""

    organization_id: uuid.UUID
    metric: str
    period: str
    limit: Decimal
    window_start: datetime
    # What the request would hold of this quota's metric.
    amount: Decimal
    # After the reservation if accepted; as they stand if refused.
    used: Decimal
    reserved: Decimal
    accepted: bool

    @property
    def remaining(self) -> Decimal:
        return self.limit - self.used - self.reserved


def counter_in_current_window(now: datetime) -> ColumnElement[bool]:
    """The join of a quota to its counter (the ledger's view) in the window holding `now`:
    a quota whose window has rolled since its last use joins nothing (nothing used yet)."""
    starts = windows(now)
    return and_(
        QuotaCounter.organization_id == Quota.organization_id,
        QuotaCounter.metric == Quota.metric,
        QuotaCounter.period == Quota.period,
        QuotaCounter.window_start == case(*((Quota.period == p, s) for p, s in starts.items())),
    )


def reserve(
    *,
    reservation_id: uuid.UUID,
    organization_id: uuid.UUID,
    now: datetime,
    tokens: int,
    cost: Decimal,
    expires_at: datetime,
) -> DriverStatement:
    """The reservation against every quota of the organisation and its ancestors, in the
    windows containing `now`; sent with the tenant context (see plume.provider_calls).
    `reserved` reads its answer; the caller rolls back if it was refused."""
    return DriverStatement(
        _RESERVE,
        {
            "id": reservation_id,
            "organization_id": organization_id,
            "now": now,
            "tokens": tokens,
            "cost": cost,
            "expires_at": expires_at,
        },
    )


def reserved(rows: list[tuple[Any, ...]]) -> Reserved | None:
    """The reservation's answer; None when no quota applies at any level."""
    return Reserved(*rows[0]) if rows else None


def settle_call(
    reservation_id: uuid.UUID,
    *,
    organization_id: uuid.UUID | None = None,
    now: datetime | None = None,
    requests: int = 0,
    tokens: int = 0,
    cost: Decimal = Decimal(0),
) -> DeferredCall:
    """Replace what the reservation held by what was used (zero to release), in the
    windows containing `now`. A charged request whose reservation is gone (swept, lost) is
    charged all the same."""
    return DeferredCall(
        SETTLE_CALL,
        {
            "quota_id": reservation_id,
            "quota_requests": requests,
            "quota_tokens": tokens,
            "quota_cost": cost,
            "quota_organization": organization_id,
            "quota_now": now,
        },
    )


async def release(session: AsyncSession, reservation_id: uuid.UUID) -> None:
    """Give back everything the reservation held (nothing was used)."""
    await run_deferred(session, settle_call(reservation_id))


async def extend(session: AsyncSession, reservation_id: uuid.UUID, expires_at: datetime) -> None:
    await session.execute(_EXTEND, {"id": reservation_id, "expires_at": expires_at})


async def release_expired(session: AsyncSession, now: datetime, batch: int = 500) -> int:
    """Release reservations whose request died with its process; returns how many. The
    session's scope must be the system's."""
    return int(await session.scalar(_RELEASE_EXPIRED, {"now": now, "batch": batch}) or 0)
