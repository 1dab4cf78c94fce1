"""Request and response bodies of the quota routes."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationInfo,
    field_validator,
)

Metric = Literal["requests", "tokens", "cost_eur"]
PeriodName = Literal["minute", "day", "month"]


def _as_number(value: Decimal) -> int | float:
    return int(value) if value == value.to_integral_value() else float(value)


# Counts are whole numbers; money keeps up to six decimals. Both are JSON numbers.
Amount = Annotated[Decimal, PlainSerializer(_as_number, return_type=int | float)]


class QuotaIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    metric: Metric = Field(description="`requests`, `tokens` or `cost_eur`")
    period: PeriodName = Field(description="`minute`, `day` or `month` (calendar, Paris time)")
    limit: Decimal = Field(
        gt=0, max_digits=20, decimal_places=6, description="Positive; EUR for `cost_eur`"
    )

    @field_validator("limit")
    @classmethod
    def _whole_counts(cls, limit: Decimal, info: ValidationInfo) -> Decimal:
        if info.data.get("metric") != "cost_eur" and limit != limit.to_integral_value():
            raise ValueError("un quota de requêtes ou de jetons est un nombre entier")
        return limit


# The kinds of organisation the operator creates (models.DEFAULT_QUOTA_KINDS).
DefaultQuotaKind = Literal["epci", "commune"]


class DefaultQuotaIn(QuotaIn):
    kind: DefaultQuotaKind = Field(
        description="The kind of organisation given this quota when created: `epci` or `commune`"
    )


class DefaultQuotaOut(BaseModel):
    kind: DefaultQuotaKind
    metric: Metric
    period: PeriodName
    limit: Amount


class DefaultQuotaList(BaseModel):
    items: list[DefaultQuotaOut]


class QuotaOut(BaseModel):
    organization_id: uuid.UUID
    metric: Metric
    period: PeriodName
    limit: Amount
    used: Amount
    reserved: Amount
    remaining: Amount
    resets_at: datetime = Field(description="Start of the next period, Paris time")


class QuotaList(BaseModel):
    items: list[QuotaOut]
