"""The usage record: one row per provider-backed request, written when it is settled."""

from __future__ import annotations

import uuid
from decimal import Decimal

from sqlalchemy import Double, ForeignKey, Index, Integer, Numeric, String
from sqlalchemy.orm import Mapped, mapped_column

from plume.db import Base, TimestampedMixin, new_id


class UsageRecord(TimestampedMixin, Base):
    __tablename__ = "usage_records"
    __table_args__ = (
        # Reports: one tenant (or an EPCI's few) over a period, and every tenant over one.
        Index("usage_records_organization_created_idx", "organization_id", "created_at"),
        Index("usage_records_created_idx", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="RESTRICT"), nullable=False
    )
    api_key_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("api_keys.id", ondelete="SET NULL")
    )
    request_id: Mapped[str | None] = mapped_column(String(128))
    # A document kind, or "chat".
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    model_group: Mapped[str] = mapped_column(String(64), nullable=False)
    provider: Mapped[str | None] = mapped_column(String(64))
    model: Mapped[str | None] = mapped_column(String(200))
    # success | failure | client_disconnected
    outcome: Mapped[str] = mapped_column(String(32), nullable=False)
    error_code: Mapped[str | None] = mapped_column(String(64))
    prompt_tokens: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    completion_tokens: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    cost_eur: Mapped[Decimal] = mapped_column(Numeric(14, 6), nullable=False, server_default="0")
    latency_ms: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    # Time to the first token of a streamed answer.
    ttft_ms: Mapped[int | None] = mapped_column(Integer)
    # EcoLogits estimates; None when the model's parameters are unknown (never zero).
    energy_kwh: Mapped[float | None] = mapped_column(Double)
    gwp_kgco2eq: Mapped[float | None] = mapped_column(Double)
    fallbacks: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    # Whether the request was charged against quotas (failures release everything).
    charged: Mapped[bool] = mapped_column(nullable=False, server_default="true")
