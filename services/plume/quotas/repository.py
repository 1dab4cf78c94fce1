"""All SQL about quotas: the limits an organisation has, and the ledger that counts their use.

The ledger moves only through SECURITY DEFINER functions (their source:
`quotas/sql/*.sql`), each atomic in PostgreSQL with no read-then-write race; the
application role only reads it. A provider-backed request reserves in the statement that
sets its transaction's tenant context, and settles in the statement that writes its usage
record (plume.calls.repository): neither costs a round trip of its own.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import psycopg
from sqlalchemy import and_, case, delete, func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from plume.db import TENANT_CONTEXT, TenantScope, tenant_context_parameters
from plume.models import DefaultQuota, Organization, Quota, QuotaCounter
from plume.quotas.periods import windows

# The tenant context, then the reservation, in one statement: a LATERAL subquery that
# depends on the context row runs after it, and OFFSET 0 keeps the planner from flattening
# it (which would free the reservation to run before the role and scope are set). A refusal
# is an error (quota_reserve_or_refuse), which aborts the transaction: sent alone on a
# connection in autocommit mode, the statement is its own transaction, committed only if the
# reservation fits.
_RESERVE_IN_CONTEXT = (
    "SELECT reserved.* FROM (" + TENANT_CONTEXT + ") AS context,"  # noqa: S608 (constants)
    " LATERAL (SELECT * FROM quota_reserve_or_refuse(%(id)s, %(organization_id)s, %(now)s,"
    " %(tokens)s::numeric, %(cost)s::numeric, %(expires_at)s)"
    " WHERE context.role IS NOT NULL OFFSET 0) AS reserved"
)
# quota_reserve_or_refuse's error: the refusing quota's row, as JSON, in its DETAIL.
QUOTA_REFUSED = "PQ429"
_SETTLE = text(
    "SELECT quota_settle(CAST(:id AS uuid), CAST(:requests AS numeric),"
    " CAST(:tokens AS numeric), CAST(:cost AS numeric), CAST(:organization_id AS uuid),"
    " CAST(:now AS timestamptz))"
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


@dataclass(frozen=True, slots=True)
class LedgerMove:
    """A settlement: replace what the reservation held by what was used (zero to release),
    in the windows containing `now`; a charged request whose reservation is gone (swept,
    lost) is charged all the same to `organization_id`'s chain."""

    reservation_id: uuid.UUID
    requests: int = 0
    tokens: int = 0
    cost: Decimal = Decimal(0)
    organization_id: uuid.UUID | None = None
    now: datetime | None = None

    @staticmethod
    def none() -> dict[str, Any]:
        """The parameters of no move at all: no reservation was held."""
        return dict.fromkeys(("id", "requests", "tokens", "cost", "organization_id", "now"))

    def parameters(self) -> dict[str, Any]:
        return {
            "id": self.reservation_id,
            "requests": self.requests,
            "tokens": self.tokens,
            "cost": self.cost,
            "organization_id": self.organization_id,
            "now": self.now,
        }


class LedgerRepository:
    """The quota ledger's functions."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def settle(self, move: LedgerMove) -> None:
        await self.session.execute(_SETTLE, move.parameters())

    async def extend(self, reservation_id: uuid.UUID, expires_at: datetime) -> None:
        """A reservation lives on past its request's end (a synthèse job)."""
        await self.session.execute(_EXTEND, {"id": reservation_id, "expires_at": expires_at})

    async def release_expired(self, now: datetime, batch: int = 500) -> int:
        """Release reservations whose request died with its process; returns how many. The
        session's scope must be the system's."""
        released = await self.session.scalar(_RELEASE_EXPIRED, {"now": now, "batch": batch})
        return int(released or 0)


async def reserve_in_context_on(
    driver: psycopg.AsyncConnection[Any],
    scope: TenantScope,
    *,
    reservation_id: uuid.UUID,
    organization_id: uuid.UUID,
    now: datetime,
    tokens: int,
    cost: Decimal,
    expires_at: datetime,
) -> Reserved | None:
    """Enter the tenant context (with asynchronous commit: a lost hold is a hold that
    vanished, and the durable settlement charges the request anyway) and reserve against
    every quota of the organisation and its ancestors, in the windows containing `now`, in
    the transaction open on `driver` (a session's), or as a transaction of its own (a
    connection in autocommit mode: plume.web.transaction.FirstConnection), committed if the
    reservation fits. None when no quota applies at any level. A refusal is answered
    (`accepted` false) with the transaction aborted by it: nothing it held is kept."""
    parameters = {
        **tenant_context_parameters(scope, durable=False),
        "id": reservation_id,
        "organization_id": organization_id,
        "now": now,
        "tokens": tokens,
        "cost": cost,
        "expires_at": expires_at,
    }
    try:
        cursor = await driver.execute(_RESERVE_IN_CONTEXT, parameters)
    except psycopg.Error as error:
        if error.sqlstate != QUOTA_REFUSED or error.diag.message_detail is None:
            raise
        return refusal_from(error.diag.message_detail)
    row = await cursor.fetchone()
    return Reserved(*row) if row is not None else None


def refusal_from(detail: str) -> Reserved:
    """The refusing quota of quota_reserve_or_refuse's error, from its detail."""
    row = json.loads(detail, parse_float=Decimal, parse_int=Decimal)
    return Reserved(
        organization_id=uuid.UUID(row["organization_id"]),
        metric=row["metric"],
        period=row["period"],
        limit=row["quota"],
        window_start=datetime.fromisoformat(row["window_start"]),
        amount=row["amount"],
        used=row["used"],
        reserved=row["reserved"],
        accepted=False,
    )


def _counter_in_current_window(now: datetime) -> ColumnElement[bool]:
    """The join of a quota to its counter (the ledger's view) in the window holding `now`:
    a quota whose window has rolled since its last use joins nothing (nothing used yet)."""
    starts = windows(now)
    return and_(
        QuotaCounter.organization_id == Quota.organization_id,
        QuotaCounter.metric == Quota.metric,
        QuotaCounter.period == Quota.period,
        QuotaCounter.window_start == case(*((Quota.period == p, s) for p, s in starts.items())),
    )


@dataclass(frozen=True, slots=True)
class QuotaUse:
    """A quota with what its current window used and holds."""

    quota: Quota
    used: Decimal
    reserved: Decimal


class QuotaRepository:
    """The quotas table, read with the ledger's use. Writes are checked by the database
    too: row-level security lets only the operator, or the parent of the organisation (an
    EPCI splitting its allowance), write an organisation's quotas, and the trigger
    `quotas_split_check` (source: `quotas/sql/quota_split_check.sql`) holds a parent to
    the quotas it has itself, its children's limits adding up to at most its own."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def with_use(
        self, organization_ids: Sequence[uuid.UUID], now: datetime
    ) -> list[QuotaUse]:
        statement = (
            select(Quota, QuotaCounter.used, QuotaCounter.reserved)
            .outerjoin(QuotaCounter, _counter_in_current_window(now))
            .where(Quota.organization_id.in_(list(organization_ids)))
        )
        rows = (await self.session.execute(statement)).all()
        return [
            QuotaUse(quota, used or Decimal(0), reserved or Decimal(0))
            for quota, used, reserved in rows
        ]

    async def every_ratio(self, now: datetime) -> list[tuple[str, str, str, Decimal]]:
        """(organisation slug, metric, period, share of the limit used or held) of every
        quota: the gauges' refresh, with the system's scope."""
        statement = (
            select(
                Organization.slug,
                Quota.metric,
                Quota.period,
                Quota.limit,
                QuotaCounter.used,
                QuotaCounter.reserved,
            )
            .join(Organization, Organization.id == Quota.organization_id)
            .outerjoin(QuotaCounter, _counter_in_current_window(now))
        )
        rows = (await self.session.execute(statement)).all()
        return [
            (slug, metric, period, ((used or Decimal(0)) + (reserved or Decimal(0))) / limit)
            for slug, metric, period, limit, used, reserved in rows
        ]

    async def lock_organization(self, organization_id: uuid.UUID) -> None:
        """Serialises changes to an organisation's quotas and to its communes' split."""
        await self.session.execute(
            select(Organization.id).where(Organization.id == organization_id).with_for_update()
        )

    async def pairs(self, organization_id: uuid.UUID) -> list[tuple[str, str]]:
        """The (metric, period) of each quota the organisation has."""
        result = await self.session.execute(
            select(Quota.metric, Quota.period).where(Quota.organization_id == organization_id)
        )
        return [(metric, period) for metric, period in result.all()]

    async def limits(self, organization_id: uuid.UUID) -> dict[tuple[str, str], Decimal]:
        quotas = await self.session.scalars(
            select(Quota).where(Quota.organization_id == organization_id)
        )
        return {(q.metric, q.period): q.limit for q in quotas}

    async def given_to_children(
        self, parent_id: uuid.UUID, except_child: uuid.UUID
    ) -> dict[tuple[str, str], Decimal]:
        """What the parent's other children have been given, per (metric, period)."""
        children = select(Organization.id).where(
            Organization.parent_id == parent_id, Organization.id != except_child
        )
        given = await self.session.execute(
            select(Quota.metric, Quota.period, func.sum(Quota.limit))
            .where(Quota.organization_id.in_(children))
            .group_by(Quota.metric, Quota.period)
        )
        return {(metric, period): total for metric, period, total in given.all()}

    async def remove(self, organization_id: uuid.UUID, metric: str, period: str) -> None:
        await self.session.execute(
            delete(Quota).where(
                Quota.organization_id == organization_id,
                Quota.metric == metric,
                Quota.period == period,
            )
        )

    async def put(
        self, organization_id: uuid.UUID, metric: str, period: str, limit: Decimal
    ) -> None:
        statement = insert(Quota).values(
            id=uuid.uuid4(),
            organization_id=organization_id,
            metric=metric,
            period=period,
            limit=limit,
        )
        await self.session.execute(
            statement.on_conflict_do_update(
                constraint="quotas_organization_key",
                set_={"limit": statement.excluded.limit, "updated_at": func.now()},
            )
        )


class DefaultQuotaRepository:
    """The operator's default quotas for new organisations. Row-level security shows them
    only to the system's scope (the operator, the command line)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def all(self) -> list[DefaultQuota]:
        return list(await self.session.scalars(select(DefaultQuota)))

    async def of_kind(self, kind: str) -> list[DefaultQuota]:
        return list(
            await self.session.scalars(select(DefaultQuota).where(DefaultQuota.kind == kind))
        )

    async def replace(self, rows: Sequence[tuple[str, str, str, Decimal]]) -> None:
        """The (kind, metric, period, limit) rows replace every default. Two operators
        replacing the list at once are serialised by the table lock."""
        await self.session.execute(text("LOCK TABLE default_quotas IN SHARE ROW EXCLUSIVE MODE"))
        await self.session.execute(delete(DefaultQuota))
        if rows:
            await self.session.execute(
                insert(DefaultQuota),
                [
                    {"id": uuid.uuid4(), "kind": k, "metric": m, "period": p, "limit": limit}
                    for k, m, p, limit in rows
                ],
            )
