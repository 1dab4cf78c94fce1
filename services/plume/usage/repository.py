"""All SQL about usage: sums over the usage record, grouped as a report asks."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from plume.models import Organization, UsageRecord
from plume.usage.schemas import GroupBy

_PARIS_TIME = func.timezone("Europe/Paris", UsageRecord.created_at)


def _key(group_by: GroupBy) -> ColumnElement[Any] | InstrumentedAttribute[str]:
    if group_by == "day":
        return func.to_char(_PARIS_TIME, "YYYY-MM-DD")
    if group_by == "month":
        return func.to_char(_PARIS_TIME, "YYYY-MM")
    if group_by == "kind":
        return UsageRecord.kind
    if group_by == "model":
        return func.coalesce(UsageRecord.model, UsageRecord.model_group)
    return Organization.slug


class UsageRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def charged_totals(
        self,
        organization_ids: Sequence[uuid.UUID] | None,
        start: datetime,
        end: datetime,
        group_by: GroupBy,
    ) -> Sequence[Any]:
        """Per group: its key, a label (an organisation's name) and the sums of what was
        charged in [start, end); `None` for every organisation."""
        key = _key(group_by).label("key")
        measures = [
            func.count().label("requests"),
            func.sum(UsageRecord.prompt_tokens).label("prompt_tokens"),
            func.sum(UsageRecord.completion_tokens).label("completion_tokens"),
            func.sum(UsageRecord.cost_eur).label("cost_eur"),
            func.sum(UsageRecord.energy_kwh).label("energy_kwh"),
            func.sum(UsageRecord.gwp_kgco2eq).label("gwp_kgco2eq"),
            func.count().filter(UsageRecord.energy_kwh.is_(None)).label("without_impact"),
        ]
        statement = (
            select(key, func.min(Organization.name).label("label"), *measures)
            .join(Organization, Organization.id == UsageRecord.organization_id)
            .where(
                UsageRecord.created_at >= start,
                UsageRecord.created_at < end,
                UsageRecord.charged.is_(True),
            )
            .group_by(key)
            .order_by(key)
        )
        if organization_ids is not None:
            statement = statement.where(UsageRecord.organization_id.in_(list(organization_ids)))
        rows: Sequence[Any] = (await self.session.execute(statement)).all()
        return rows

    async def providers_used(self, organization_id: uuid.UUID) -> Sequence[Any]:
        """Per provider that answered this organisation: first and last use, requests."""
        statement = (
            select(
                UsageRecord.provider.label("provider"),
                func.min(UsageRecord.created_at).label("first_used"),
                func.max(UsageRecord.created_at).label("last_used"),
                func.count().label("requests"),
            )
            .where(
                UsageRecord.organization_id == organization_id,
                UsageRecord.provider.is_not(None),
            )
            .group_by(UsageRecord.provider)
            .order_by(func.min(UsageRecord.created_at))
        )
        return (await self.session.execute(statement)).all()
