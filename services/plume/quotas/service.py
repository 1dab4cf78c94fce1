"""Reading quotas with their use, and setting them (the operator; an EPCI splitting its
allowance between its communes)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from plume.db import TenantScope
from plume.errors import invalid_field
from plume.models import Organization, Quota, QuotaCounter
from plume.provider_calls import plain_number
from plume.quotas import ledger
from plume.quotas.guard import quota_label
from plume.quotas.periods import PARIS, Clock, window_end, windows
from plume.quotas.schemas import QuotaIn, QuotaOut

_ORDER = {"requests": 0, "tokens": 1, "cost_eur": 2, "minute": 0, "day": 1, "month": 2}


def check_no_duplicates(items: Sequence[QuotaIn]) -> None:
    seen: set[tuple[str, str]] = set()
    for index, item in enumerate(items):
        if (item.metric, item.period) in seen:
            raise invalid_field(
                f"[{index}].period",
                f"le quota « {item.metric} » par « {item.period} » figure deux fois dans la liste",
            )
        seen.add((item.metric, item.period))


class QuotaService:
    def __init__(self, session: AsyncSession, scope: TenantScope, clock: Clock) -> None:
        self.session = session
        self.scope = scope
        self.clock = clock

    async def status(self, organization_ids: Sequence[uuid.UUID]) -> list[QuotaOut]:
        """Each quota of these organisations, with what the current period used and holds."""
        now = self.clock.now()
        statement = (
            select(Quota, QuotaCounter.used, QuotaCounter.reserved)
            .outerjoin(QuotaCounter, ledger.counter_in_current_window(now))
            .where(Quota.organization_id.in_(list(organization_ids)))
        )
        rank = {organization_id: index for index, organization_id in enumerate(organization_ids)}
        rows = sorted(
            (await self.session.execute(statement)).all(),
            key=lambda r: (rank[r[0].organization_id], _ORDER[r[0].metric], _ORDER[r[0].period]),
        )
        starts = windows(now)
        return [self._out(quota, used, reserved, starts) for quota, used, reserved in rows]

    @staticmethod
    def _out(
        quota: Quota,
        used: Decimal | None,
        reserved: Decimal | None,
        windows: dict[str, datetime],
    ) -> QuotaOut:
        used = used or Decimal(0)
        reserved = reserved or Decimal(0)
        return QuotaOut(
            organization_id=quota.organization_id,
            metric=quota.metric,
            period=quota.period,
            limit=quota.limit,
            used=used,
            reserved=reserved,
            remaining=max(Decimal(0), quota.limit - used - reserved),
            resets_at=window_end(quota.period, windows[quota.period]).astimezone(PARIS),
        )

    async def replace(
        self,
        organization_id: uuid.UUID,
        items: Sequence[QuotaIn],
        within: set[tuple[str, str]] | None = None,
    ) -> None:
        """The list replaces the organisation's quotas — only those on the (metric, period)
        pairs in `within`, when given; counters (the ledger) are kept."""
        check_no_duplicates(items)
        await self._lock(organization_id)
        wanted = {(item.metric, item.period) for item in items}
        existing = await self.session.execute(
            select(Quota.metric, Quota.period).where(Quota.organization_id == organization_id)
        )
        gone = [
            pair
            for pair in existing.all()
            if (pair[0], pair[1]) not in wanted and (within is None or (pair[0], pair[1]) in within)
        ]
        for metric, period in gone:
            await self.session.execute(
                delete(Quota).where(
                    Quota.organization_id == organization_id,
                    Quota.metric == metric,
                    Quota.period == period,
                )
            )
        for item in items:
            statement = insert(Quota).values(
                id=uuid.uuid4(),
                organization_id=organization_id,
                metric=item.metric,
                period=item.period,
                limit=item.limit,
            )
            await self.session.execute(
                statement.on_conflict_do_update(
                    constraint="quotas_organization_key",
                    set_={"limit": statement.excluded.limit, "updated_at": func.now()},
                )
            )

    async def _lock(self, organization_id: uuid.UUID) -> None:
        """Serialises changes to an organisation's quotas and to its communes' split."""
        await self.session.execute(
            select(Organization.id).where(Organization.id == organization_id).with_for_update()
        )

    async def check_split(
        self, epci: Organization, commune_id: uuid.UUID, items: Sequence[QuotaIn]
    ) -> set[tuple[str, str]]:
        """An EPCI may hand its communes no more than it has: it splits only the quotas it
        has itself, and for each, the communes' limits add up to at most its own. Returns
        the (metric, period) pairs it may set (the operator's other limits stay)."""
        check_no_duplicates(items)
        # Two splits at once cannot both fit on their own and overflow together, nor can the
        # operator shrink the EPCI's limits under a split (`replace` locks it too). The
        # organisation is locked, not its quotas, which only the operator may write.
        await self._lock(epci.id)
        own = {
            (q.metric, q.period): q.limit
            for q in await self.session.scalars(
                select(Quota).where(Quota.organization_id == epci.id)
            )
        }
        siblings = select(Organization.id).where(
            Organization.parent_id == epci.id, Organization.id != commune_id
        )
        given = await self.session.execute(
            select(Quota.metric, Quota.period, func.sum(Quota.limit))
            .where(Quota.organization_id.in_(siblings))
            .group_by(Quota.metric, Quota.period)
        )
        already = {(metric, period): total for metric, period, total in given.all()}
        for index, item in enumerate(items):
            ceiling = own.get((item.metric, item.period))
            if ceiling is None:
                raise invalid_field(
                    f"[{index}].period",
                    f"l'EPCI « {epci.name} » n'a pas de quota « {item.metric} » par "
                    f"« {item.period} » à répartir ; seul l'opérateur peut en fixer un",
                )
            others = already.get((item.metric, item.period), Decimal(0))
            if others + item.limit > ceiling:
                free = max(Decimal(0), ceiling - others)
                raise invalid_field(
                    f"[{index}].limit",
                    f"les quotas des communes dépasseraient celui de l'EPCI « {epci.name} » "
                    f"({quota_label(item.metric, item.period, ceiling)}) ; "
                    f"il reste au plus {plain_number(free)} à répartir pour cette commune",
                )
        return set(own)
