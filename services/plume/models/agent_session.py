"""An agent's sessions: server-side, found by the HMAC of the cookie's opaque token."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Index, String, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from plume.db import Base, TimestampedMixin, new_id


class AgentSession(TimestampedMixin, Base):
    __tablename__ = "agent_sessions"
    __table_args__ = (Index("agent_sessions_agent_created_idx", "agent_id", "created_at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="RESTRICT"), nullable=False
    )
    agent_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("agents.id", ondelete="RESTRICT"), nullable=False
    )
    # HMAC-SHA-256 of the cookie's token, keyed by the server secret. Never loaded: the
    # application role may not read it (the session is found by agent_session_lookup).
    token_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True, deferred=True)
    # Its idle expiry counts from here (written at most once a minute).
    last_seen_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    # The absolute expiry.
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The authentication context the provider vouched for (ProConnect: eidas1…).
    acr: Mapped[str | None] = mapped_column(String(100))
    user_agent: Mapped[str | None] = mapped_column(String(300))
    # The provider's ID token, sent back as id_token_hint when the agent signs out.
    id_token: Mapped[str | None] = mapped_column(Text)
