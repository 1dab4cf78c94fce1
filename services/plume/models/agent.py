"""Agents: the people of an organisation who sign in with ProConnect (OpenID Connect)."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    CheckConstraint,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    String,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from plume.db import Base, TimestampedMixin, new_id


class AgentRole(StrEnum):
    AGENT = "agent"
    TENANT_ADMIN = "tenant_admin"


class AgentStatus(StrEnum):
    # Invited by e-mail, not yet signed in: no subject.
    INVITED = "invited"
    ACTIVE = "active"
    SUSPENDED = "suspended"


def _enum(cls: type[StrEnum], name: str) -> Enum:
    return Enum(cls, name=name, values_callable=lambda members: [m.value for m in members])


class Agent(TimestampedMixin, Base):
    __tablename__ = "agents"
    __table_args__ = (
        CheckConstraint("(issuer IS NULL) = (subject IS NULL)", name="bound"),
        CheckConstraint("status <> 'active' OR subject IS NOT NULL", name="active_bound"),
        Index(
            "agents_organization_email_idx", "organization_id", text("lower(email)"), unique=True
        ),
        Index("agents_email_idx", text("lower(email)")),
        UniqueConstraint("issuer", "subject", name="agents_issuer_subject_key"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="RESTRICT"), nullable=False
    )
    email: Mapped[str] = mapped_column(String(320), nullable=False)
    # The provider's identity, set at the first sign-in: (iss, sub) of the ID token.
    issuer: Mapped[str | None] = mapped_column(String(500))
    subject: Mapped[str | None] = mapped_column(String(255))
    given_name: Mapped[str | None] = mapped_column(String(200))
    usual_name: Mapped[str | None] = mapped_column(String(200))
    # « Maire », « Secrétaire générale de mairie »: set by the tenant admin, printed on reviews.
    title: Mapped[str | None] = mapped_column(String(200))
    role: Mapped[AgentRole] = mapped_column(_enum(AgentRole, "agent_role"), nullable=False)
    status: Mapped[AgentStatus] = mapped_column(
        _enum(AgentStatus, "agent_status"), nullable=False, default=AgentStatus.INVITED
    )
    invited_by_key_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("api_keys.id", ondelete="SET NULL")
    )
    invited_by_agent_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("agents.id", ondelete="SET NULL")
    )
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now(), nullable=False
    )

    @property
    def display_name(self) -> str:
        """« Camille Martin »; the e-mail address before the first sign-in."""
        name = " ".join(p for p in (self.given_name, self.usual_name) if p)
        return name or self.email
