"""The operator's default quotas: what a new organisation of a kind is given when created."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import CheckConstraint, DateTime, String, UniqueConstraint, func
from sqlalchemy.orm import Mapped, mapped_column

from plume.db import Base, TimestampedMixin, new_id
from plume.models.quota import AMOUNT

# The kinds an organisation is created with (the operator is created once, by bootstrap).
DEFAULT_QUOTA_KINDS = ("epci", "commune")


class DefaultQuota(TimestampedMixin, Base):
    """One default limit: each new organisation of `kind` gets `limit` of `metric` per
    `period`, copied into its own quotas when it is created (never afterwards)."""

    __tablename__ = "default_quotas"
    __table_args__ = (
        UniqueConstraint("kind", "metric", "period", name="default_quotas_kind_key"),
        CheckConstraint("kind IN ('epci', 'commune')", name="kind"),
        CheckConstraint("metric IN ('requests', 'tokens', 'cost_eur')", name="metric"),
        CheckConstraint("period IN ('minute', 'day', 'month')", name="period"),
        CheckConstraint('"limit" > 0', name="limit_positive"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    metric: Mapped[str] = mapped_column(String(16), nullable=False)
    period: Mapped[str] = mapped_column(String(16), nullable=False)
    limit: Mapped[Decimal] = mapped_column(AMOUNT, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
