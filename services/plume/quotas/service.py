"""Reading quotas with their use, and setting them (the operator; an EPCI splitting its
allowance between its communes)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from plume.dates import PARIS, Clock
from plume.errors import invalid_field
from plume.french import plain_number
from plume.models import Organization
from plume.quotas.periods import window_end, windows
from plume.quotas.repository import QuotaRepository, QuotaUse
from plume.quotas.schemas import QuotaIn, QuotaOut
from plume.quotas.wording import quota_label

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
    """Quotas are read under row-level security (a commune sees its own and its ancestors');
    they are written only by the operator, or by an EPCI for its communes."""

    def __init__(self, session: AsyncSession, clock: Clock) -> None:
        self.repository = QuotaRepository(session)
        self.clock = clock

    async def status(self, organization_ids: Sequence[uuid.UUID]) -> list[QuotaOut]:
        """Each quota of these organisations, with what the current period used and holds."""
        now = self.clock.now()
        rank = {organization_id: index for index, organization_id in enumerate(organization_ids)}
        uses = sorted(
            await self.repository.with_use(organization_ids, now),
            key=lambda u: (
                rank[u.quota.organization_id],
                _ORDER[u.quota.metric],
                _ORDER[u.quota.period],
            ),
        )
        starts = windows(now)
        return [self._out(use, starts) for use in uses]

    @staticmethod
    def _out(use: QuotaUse, windows: dict[str, datetime]) -> QuotaOut:
        quota = use.quota
        return QuotaOut(
            organization_id=quota.organization_id,
            metric=quota.metric,
            period=quota.period,
            limit=quota.limit,
            used=use.used,
            reserved=use.reserved,
            remaining=max(Decimal(0), quota.limit - use.used - use.reserved),
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
        await self.repository.lock_organization(organization_id)
        wanted = {(item.metric, item.period) for item in items}
        for metric, period in await self.repository.pairs(organization_id):
            if (metric, period) not in wanted and (within is None or (metric, period) in within):
                await self.repository.remove(organization_id, metric, period)
        for item in items:
            await self.repository.put(organization_id, item.metric, item.period, item.limit)

    async def check_split(
        self, epci: Organization, commune_id: uuid.UUID, items: Sequence[QuotaIn]
    ) -> set[tuple[str, str]]:
        """An EPCI may hand its communes no more than it has: it splits only the quotas it
        has itself, and for each, the communes' limits add up to at most its own. Returns
        the (metric, period) pairs it may set (the operator's other limits stay). Checked
        here to answer with the field at fault; the database refuses the same writes
        (trigger `quotas_split_check`, quotas/sql/quota_split_check.sql)."""
        check_no_duplicates(items)
        # Two splits at once cannot both fit on their own and overflow together, nor can the
        # operator shrink the EPCI's limits under a split (`replace` locks it too). The
        # organisation is locked, not its quotas, which only the operator may write.
        await self.repository.lock_organization(epci.id)
        own = await self.repository.limits(epci.id)
        already = await self.repository.given_to_children(epci.id, except_child=commune_id)
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
