"""Quotas as the tests set and read them: through the operator's route, and in the ledger's
tables."""

from __future__ import annotations

from typing import Any

from httpx import AsyncClient, Response
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from plume.models import Organization, QuotaCounter, QuotaReservation
from tests.support.factories import Key

ARTICLE = {
    "kind": "bulletin_article",
    "subject": "Atelier de réparation de vélos",
    "key_points": ["samedi 14 h", "salle des fêtes", "gratuit"],
}


async def set_quotas(
    client: AsyncClient, operator: Key, organization: Organization, quotas: list[dict[str, Any]]
) -> Response:
    return await client.put(
        f"/v1/admin/organizations/{organization.id}/quotas", json=quotas, headers=operator.headers
    )


async def counter(
    db: AsyncSession, organization: Organization, metric: str, period: str
) -> QuotaCounter | None:
    rows = (
        await db.scalars(
            select(QuotaCounter)
            .where(
                QuotaCounter.organization_id == organization.id,
                QuotaCounter.metric == metric,
                QuotaCounter.period == period,
            )
            .order_by(QuotaCounter.window_start.desc())
            .execution_options(populate_existing=True)
        )
    ).all()
    return rows[0] if rows else None


async def open_reservations(db: AsyncSession, *organizations: Organization) -> int:
    ids = [o.id for o in organizations]
    count = await db.scalar(
        select(func.count())
        .select_from(QuotaReservation)
        .where(QuotaReservation.organization_id.in_(ids))
    )
    return int(count or 0)
