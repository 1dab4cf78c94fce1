"""API keys: stored only as an HMAC of the secret, shown once at creation."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import DateTime, Enum, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from plume.db import Base, TimestampedMixin, new_id


class ApiKeyRole(StrEnum):
    OPERATOR_ADMIN = "operator_admin"
    TENANT_ADMIN = "tenant_admin"
    AGENT = "agent"


class ApiKey(TimestampedMixin, Base):
    __tablename__ = "api_keys"
    __table_args__ = (Index("api_keys_organization_created_idx", "organization_id", "created_at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="RESTRICT"), nullable=False
    )
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    role: Mapped[ApiKeyRole] = mapped_column(
        Enum(ApiKeyRole, name="api_key_role", values_callable=lambda m: [r.value for r in m]),
        nullable=False,
    )
    # First characters of the key, safe to display ("plm_AbCd1234").
    prefix: Mapped[str] = mapped_column(String(16), nullable=False)
    # HMAC-SHA-256 of the whole key, keyed by the server secret, hex. Never loaded with the
    # key: the application role may not read it (the key is found by api_key_lookup).
    secret_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True, deferred=True)
    # Fingerprint of the server secret that produced secret_hash (rotation).
    secret_version: Mapped[str] = mapped_column(String(16), nullable=False)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_by_key_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("api_keys.id", ondelete="SET NULL")
    )
