"""Drafts: the documents a tenant asked for, their review, and long synthèse jobs."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    DateTime,
    Double,
    Enum,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    func,
)
from sqlalchemy import text as sql_text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from plume.db import Base, TimestampedMixin, new_id


class DraftStatus(StrEnum):
    DRAFT = "draft"
    PROCESSING = "processing"
    APPROVED = "approved"
    REJECTED = "rejected"
    FAILED = "failed"
    # Its texts forgotten for good (by request or by retention); its record kept.
    ERASED = "erased"


class Draft(TimestampedMixin, Base):
    __tablename__ = "drafts"
    __table_args__ = (
        Index("drafts_organization_created_idx", "organization_id", "created_at"),
        # The job queue: pending synthèses, oldest first.
        Index(
            "drafts_pending_jobs_idx",
            "created_at",
            postgresql_where=sql_text("status = 'processing'"),
        ),
        # Whose turn it is: each organisation's last claim of a job.
        Index(
            "drafts_job_turns_idx",
            "organization_id",
            "claimed_at",
            postgresql_where=sql_text("claimed_at IS NOT NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="RESTRICT"), nullable=False
    )
    created_by_key_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("api_keys.id", ondelete="SET NULL")
    )
    # Or the OAuth2 client whose token asked for it (a synthèse job acts for it).
    created_by_client_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("oauth_clients.id", ondelete="SET NULL")
    )
    # Or the agent signed in with ProConnect who asked for it.
    created_by_agent_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("agents.id", ondelete="SET NULL")
    )
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    status: Mapped[DraftStatus] = mapped_column(
        Enum(DraftStatus, name="draft_status", values_callable=lambda m: [s.value for s in m]),
        nullable=False,
    )
    title: Mapped[str | None] = mapped_column(Text)
    # The request as sent (without transport options): the job needs it, retention applies.
    request: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    model_group: Mapped[str | None] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    sections: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    warnings: Mapped[list[dict[str, Any]]] = mapped_column(
        JSONB, nullable=False, server_default=sql_text("'[]'::jsonb")
    )
    acte_nature: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    ai_notice: Mapped[str] = mapped_column(Text, nullable=False)
    provider: Mapped[str | None] = mapped_column(String(64))
    model: Mapped[str | None] = mapped_column(String(200))
    prompt_tokens: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    completion_tokens: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    cost_eur: Mapped[Decimal] = mapped_column(Numeric(14, 6), nullable=False, server_default="0")
    # EcoLogits estimates; None when the model's parameters are unknown.
    energy_kwh: Mapped[float | None] = mapped_column(Double)
    gwp_kgco2eq: Mapped[float | None] = mapped_column(Double)
    fallbacks: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    # Residents' identifiers the provider saw as placeholders (docs/privacy.md).
    pseudonymised: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    failure_reason: Mapped[str | None] = mapped_column(Text)
    # Job bookkeeping for long synthèses.
    progress: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    # The summaries of the parts done so far, by the part's digest, while the job runs: an
    # attempt that resumes the job does not pay for them again. Emptied when the job ends.
    part_summaries: Mapped[dict[str, str] | None] = mapped_column(JSONB)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The lease's owner, set by each claim: only the worker holding it may renew, extend or
    # complete the job.
    lease_token: Mapped[uuid.UUID | None] = mapped_column()
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The quota reservation a synthèse job settles when it finishes.
    reservation_id: Mapped[uuid.UUID | None] = mapped_column()
    # The review, by a named person; a reviewed draft is immutable.
    review_decision: Mapped[str | None] = mapped_column(String(16))
    reviewer_name: Mapped[str | None] = mapped_column(String(200))
    reviewer_title: Mapped[str | None] = mapped_column(String(200))
    review_comment: Mapped[str | None] = mapped_column(Text)
    reviewed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    erased_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # SHA-256 of the text it had, kept when the text is erased.
    text_digest: Mapped[str | None] = mapped_column(String(64))
    reviewed_by_key_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("api_keys.id", ondelete="SET NULL")
    )
    # The signed-in agent who reviewed it: the reviewer's identity is then verified.
    reviewed_by_agent_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("agents.id", ondelete="SET NULL")
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now(), nullable=False
    )
