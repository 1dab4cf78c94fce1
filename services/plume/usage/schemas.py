"""Usage report bodies."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, Field

from plume.quotas.schemas import Amount

GroupBy = Literal["day", "month", "kind", "model", "organization"]


class UsageFigures(BaseModel):
    requests: int
    prompt_tokens: int
    completion_tokens: int
    cost_eur: Amount
    energy_kwh: float | None = Field(
        description="Estimated (EcoLogits); null when no request had a known model"
    )
    gwp_kgco2eq: float | None
    requests_without_impact: int = Field(
        description="Requests whose model has unknown parameters: not in energy_kwh"
    )


class UsageRow(UsageFigures):
    key: str = Field(description="The day, month, kind, model or organisation slug")
    label: str | None = Field(default=None, description="The organisation's name")


class UsageReport(BaseModel):
    from_: date = Field(alias="from", serialization_alias="from")
    to: date
    group_by: GroupBy
    rows: list[UsageRow]
    total: UsageFigures
    warnings: list[str]

    model_config = {"populate_by_name": True}
