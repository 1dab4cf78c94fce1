"""Usage reports: sums over the usage record, grouped as the caller asks."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from plume.dates import utc_bounds
from plume.usage.repository import UsageRepository
from plume.usage.schemas import GroupBy, UsageFigures, UsageReport, UsageRow
from plume.web.spreadsheet import csv_line


def _figures(row: Any) -> dict[str, Any]:
    return {
        "requests": int(row.requests),
        "prompt_tokens": int(row.prompt_tokens or 0),
        "completion_tokens": int(row.completion_tokens or 0),
        "cost_eur": Decimal(row.cost_eur or 0),
        "energy_kwh": float(row.energy_kwh) if row.energy_kwh is not None else None,
        "gwp_kgco2eq": float(row.gwp_kgco2eq) if row.gwp_kgco2eq is not None else None,
        "requests_without_impact": int(row.without_impact),
    }


async def usage_report(
    session: AsyncSession,
    organization_ids: Sequence[uuid.UUID] | None,
    first: date,
    last: date,
    group_by: GroupBy,
) -> UsageReport:
    """What was charged between two Paris dates; `None` for every organisation.

    Failed requests released their quota and are not counted; a request cut by its client
    counts with what it produced.
    """
    start, end = utc_bounds(first, last)
    found = await UsageRepository(session).charged_totals(organization_ids, start, end, group_by)
    rows = [
        UsageRow(
            key=str(row.key),
            label=row.label if group_by == "organization" else None,
            **_figures(row),
        )
        for row in found
    ]
    total = UsageFigures(
        requests=sum(r.requests for r in rows),
        prompt_tokens=sum(r.prompt_tokens for r in rows),
        completion_tokens=sum(r.completion_tokens for r in rows),
        cost_eur=sum((r.cost_eur for r in rows), Decimal(0)),
        energy_kwh=_sum_known([r.energy_kwh for r in rows]),
        gwp_kgco2eq=_sum_known([r.gwp_kgco2eq for r in rows]),
        requests_without_impact=sum(r.requests_without_impact for r in rows),
    )
    warnings = []
    if total.requests_without_impact:
        warnings.append(
            f"{total.requests_without_impact} requête(s) sur {total.requests} ont été servies "
            "par un modèle dont les paramètres ne sont pas connus : leur énergie et leurs "
            "émissions ne sont pas estimées et ne figurent pas dans les totaux."
        )
    return UsageReport(
        from_=first, to=last, group_by=group_by, rows=rows, total=total, warnings=warnings
    )


def _sum_known(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


_COLUMNS = [
    "key",
    "label",
    "requests",
    "prompt_tokens",
    "completion_tokens",
    "cost_eur",
    "energy_kwh",
    "gwp_kgco2eq",
    "requests_without_impact",
]


def as_csv(report: UsageReport) -> str:
    """The rows, then the total; cells that a spreadsheet would take for a formula (an
    organisation's name, a model's) are neutralised."""
    lines = [csv_line(_COLUMNS)]
    for row in report.rows:
        data = row.model_dump(mode="json")
        lines.append(csv_line(data[c] for c in _COLUMNS))
    total = report.total.model_dump(mode="json")
    lines.append(csv_line(["total", "", *(total[c] for c in _COLUMNS[2:])]))
    return "".join(lines)
