"""Quotas, their per-period counters (the ledger) and the reservations held against them.

The ledger and reservations are written only by the ledger's SECURITY DEFINER functions
(source: plume/quotas/sql/; plume.quotas.repository calls them) and by the trigger that
copies an organisation's limits into its ledger row: the application role reads them.
They carry no foreign key to organisations: the check would run on every request's hot
path, and organisations are never deleted (every other table restricts it).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    CheckConstraint,
    DateTime,
    ForeignKey,
    Numeric,
    String,
    UniqueConstraint,
    Uuid,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY
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


class QuotaLedger(Base):
    """One organisation's ledger: each period's current window with its use per metric, and
    what requests in flight hold per metric (whatever the period).

    Windows roll forward in the row itself when a request reserves or settles; a request
    is charged to the windows in which it ends. One row per organisation keeps a request's
    writes to one row per level of its chain.
    """

    __tablename__ = "quota_ledger"
    __table_args__ = (
        CheckConstraint(
            "reserved_requests >= 0 AND reserved_tokens >= 0 AND reserved_cost_eur >= 0",
            name="reserved_not_negative",
        ),
        CheckConstraint(
            "minute_requests >= 0 AND minute_tokens >= 0 AND minute_cost_eur >= 0"
            " AND day_requests >= 0 AND day_tokens >= 0 AND day_cost_eur >= 0"
            " AND month_requests >= 0 AND month_tokens >= 0 AND month_cost_eur >= 0",
            name="used_not_negative",
        ),
    )

    # No foreign key (see the module's docstring).
    organization_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    minute_start: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    day_start: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    month_start: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    minute_requests: Mapped[Decimal] = mapped_column(AMOUNT, nullable=False, server_default="0")
    minute_tokens: Mapped[Decimal] = mapped_column(AMOUNT, nullable=False, server_default="0")
    minute_cost_eur: Mapped[Decimal] = mapped_column(AMOUNT, nullable=False, server_default="0")
    day_requests: Mapped[Decimal] = mapped_column(AMOUNT, nullable=False, server_default="0")
    day_tokens: Mapped[Decimal] = mapped_column(AMOUNT, nullable=False, server_default="0")
    day_cost_eur: Mapped[Decimal] = mapped_column(AMOUNT, nullable=False, server_default="0")
    month_requests: Mapped[Decimal] = mapped_column(AMOUNT, nullable=False, server_default="0")
    month_tokens: Mapped[Decimal] = mapped_column(AMOUNT, nullable=False, server_default="0")
    month_cost_eur: Mapped[Decimal] = mapped_column(AMOUNT, nullable=False, server_default="0")
    reserved_requests: Mapped[Decimal] = mapped_column(AMOUNT, nullable=False, server_default="0")
    reserved_tokens: Mapped[Decimal] = mapped_column(AMOUNT, nullable=False, server_default="0")
    reserved_cost_eur: Mapped[Decimal] = mapped_column(AMOUNT, nullable=False, server_default="0")
    # The organisation's limits (NULL: no such quota), copied from `quotas` by a trigger.
    minute_requests_limit: Mapped[Decimal | None] = mapped_column(AMOUNT)
    minute_tokens_limit: Mapped[Decimal | None] = mapped_column(AMOUNT)
    minute_cost_eur_limit: Mapped[Decimal | None] = mapped_column(AMOUNT)
    day_requests_limit: Mapped[Decimal | None] = mapped_column(AMOUNT)
    day_tokens_limit: Mapped[Decimal | None] = mapped_column(AMOUNT)
    day_cost_eur_limit: Mapped[Decimal | None] = mapped_column(AMOUNT)
    month_requests_limit: Mapped[Decimal | None] = mapped_column(AMOUNT)
    month_tokens_limit: Mapped[Decimal | None] = mapped_column(AMOUNT)
    month_cost_eur_limit: Mapped[Decimal | None] = mapped_column(AMOUNT)


class QuotaCounter(Base):
    """A view over the ledger: one row per quota, with its window's use and what requests
    in flight hold (read-only; `window_start` is the ledger's latest window of that
    period, which a reader compares with the current one)."""

    __tablename__ = "quota_counters"
    __table_args__ = ({"info": {"is_view": True}},)

    organization_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    metric: Mapped[str] = mapped_column(String(16), primary_key=True)
    period: Mapped[str] = mapped_column(String(16), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used: Mapped[Decimal] = mapped_column(AMOUNT)
    reserved: Mapped[Decimal] = mapped_column(AMOUNT)


class QuotaReservation(TimestampedMixin, Base):
    """Capacity held for a request in flight; settled, released, or swept when it expires."""

    __tablename__ = "quota_reservations"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    # No foreign key, and no index on expires_at: the sweep reads a small table of requests
    # in flight (see the module's docstring).
    organization_id: Mapped[uuid.UUID] = mapped_column(nullable=False)
    tokens: Mapped[Decimal] = mapped_column(AMOUNT, nullable=False)
    cost_eur: Mapped[Decimal] = mapped_column(AMOUNT, nullable=False)
    # The ledger rows held: the levels of the chain that had quotas.
    holds: Mapped[list[uuid.UUID]] = mapped_column(ARRAY(Uuid), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
