"""The operator's default quotas: set per kind of organisation, copied into a new
organisation's own quotas when it is created, never into existing ones."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from plume.errors import invalid_field
from plume.models import DEFAULT_QUOTA_KINDS, DefaultQuota, Organization
from plume.quotas.repository import DefaultQuotaRepository, QuotaRepository
from plume.quotas.schemas import DefaultQuotaIn, DefaultQuotaOut, QuotaIn

_ORDER = {
    **{kind: index for index, kind in enumerate(DEFAULT_QUOTA_KINDS)},
    **{"requests": 0, "tokens": 1, "cost_eur": 2, "minute": 0, "day": 1, "month": 2},
}


def _plain(limit: Decimal) -> Decimal:
    """A stored limit without the column's trailing zeros (200, 12.5), as the operator wrote it."""
    return limit.quantize(Decimal(1)) if limit == limit.to_integral_value() else limit.normalize()


def given_details(given: Sequence[QuotaIn]) -> dict[str, Any]:
    """The audit entry's details of the defaults a new organisation was given
    (`quota.update` in its chain, as when the operator sets its quotas)."""
    return {"quotas": [q.model_dump(mode="json") for q in given], "source": "default_quotas"}


def _out(row: DefaultQuota) -> DefaultQuotaOut:
    return DefaultQuotaOut.model_validate(
        {"kind": row.kind, "metric": row.metric, "period": row.period, "limit": row.limit}
    )


class DefaultQuotaService:
    """Read and replace the defaults (the operator's scope), and give them to a new
    organisation in the transaction that creates it."""

    def __init__(self, session: AsyncSession) -> None:
        self.repository = DefaultQuotaRepository(session)
        self.quotas = QuotaRepository(session)

    async def read(self) -> list[DefaultQuotaOut]:
        rows = await self.repository.all()
        rows.sort(key=lambda r: (_ORDER[r.kind], _ORDER[r.metric], _ORDER[r.period]))
        return [_out(row) for row in rows]

    async def replace(self, items: Sequence[DefaultQuotaIn]) -> None:
        """The list replaces every default, of every kind; an empty list clears them."""
        seen: set[tuple[str, str, str]] = set()
        for index, item in enumerate(items):
            if (item.kind, item.metric, item.period) in seen:
                raise invalid_field(
                    f"[{index}].period",
                    f"le quota par défaut « {item.metric} » par « {item.period} » des "
                    f"organisations de type « {item.kind} » figure deux fois dans la liste",
                )
            seen.add((item.kind, item.metric, item.period))
        await self.repository.replace(
            [(item.kind, item.metric, item.period, item.limit) for item in items]
        )

    async def apply(self, organization: Organization) -> list[QuotaIn]:
        """Give a new organisation the defaults of its kind, as its own quotas; returns
        them (none when the operator configured none for that kind)."""
        given = [
            QuotaIn.model_validate(
                {"metric": row.metric, "period": row.period, "limit": _plain(row.limit)}
            )
            for row in await self.repository.of_kind(organization.kind.value)
        ]
        given.sort(key=lambda q: (_ORDER[q.metric], _ORDER[q.period]))
        for quota in given:
            await self.quotas.put(organization.id, quota.metric, quota.period, quota.limit)
        return given
