"""Quotas, their per-period counters (the ledger) and the reservations held against them."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Numeric,
    PrimaryKeyConstraint,
    String,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from plume.db import Base, TimestampedMixin, new_id

METRICS = ("requests", "tokens", "cost_eur")
PERIODS = ("minute", "day", "month")
# Large enough for a department's monthly tokens; money keeps its six decimals exactly.
AMOUNT = Numeric(20, 6)


class Quota(TimestampedMixin, Base):
    """One limit of one organisation: `limit` of `metric` per calendar `period` (Paris)."""

    __tablename__ = "quotas"
    __table_args__ = (
        UniqueConstraint("organization_id", "metric", "period", name="quotas_organization_key"),
        CheckConstraint("metric IN ('requests', 'tokens', 'cost_eur')", name="metric"),
        CheckConstraint("period IN ('minute', 'day', 'month')", name="period"),
        CheckConstraint('"limit" > 0', name="limit_positive"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="RESTRICT"), nullable=False
    )
    metric: Mapped[str] = mapped_column(String(16), nullable=False)
    period: Mapped[str] = mapped_column(String(16), nullable=False)
    limit: Mapped[Decimal] = mapped_column(AMOUNT, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )


class QuotaCounter(Base):
    """What one period window of one quota has used, and what is reserved in flight.

    Rows are per window, so a request is settled against the window it reserved in even
    when the period has rolled over since; old windows are swept.
    """

    __tablename__ = "quota_counters"
    __table_args__ = (
        PrimaryKeyConstraint("organization_id", "metric", "period", "window_start"),
        CheckConstraint("used >= 0", name="used_not_negative"),
        CheckConstraint("reserved >= 0", name="reserved_not_negative"),
    )

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="RESTRICT"), nullable=False
    )
    metric: Mapped[str] = mapped_column(String(16), nullable=False)
    period: Mapped[str] = mapped_column(String(16), nullable=False)
    window_start: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    used: Mapped[Decimal] = mapped_column(AMOUNT, nullable=False, server_default="0")
    reserved: Mapped[Decimal] = mapped_column(AMOUNT, nullable=False, server_default="0")


class QuotaReservation(TimestampedMixin, Base):
    """Capacity held for a request in flight; settled, released, or swept when it expires."""

    __tablename__ = "quota_reservations"
    __table_args__ = (Index("quota_reservations_expires_at_idx", "expires_at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="RESTRICT"), nullable=False
    )
    tokens: Mapped[Decimal] = mapped_column(AMOUNT, nullable=False)
    cost_eur: Mapped[Decimal] = mapped_column(AMOUNT, nullable=False)
    # The counters held: [[organization_id, metric, period, window_start], ...]
    holds: Mapped[list[Any]] = mapped_column(JSONB, nullable=False)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
