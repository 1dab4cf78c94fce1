"""The audit trail: one hash chain per organisation, append-only in PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, Index, PrimaryKeyConstraint, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from plume.db import Base


class AuditEntry(Base):
    """One entry. `body` is the canonical JSON that was hashed (see docs/audit.md); the other
    columns repeat some of its fields for filtering, and verification checks they agree."""

    __tablename__ = "audit_entries"
    __table_args__ = (
        PrimaryKeyConstraint("organization_id", "seq"),
        Index("audit_entries_organization_occurred_idx", "organization_id", "occurred_at"),
    )

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="RESTRICT"), nullable=False
    )
    seq: Mapped[int] = mapped_column(BigInteger, nullable=False)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    action: Mapped[str] = mapped_column(String(40), nullable=False)
    actor_key_id: Mapped[uuid.UUID | None] = mapped_column()
    actor_role: Mapped[str | None] = mapped_column(String(32))
    body: Mapped[str] = mapped_column(Text, nullable=False)
    prev_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    hash: Mapped[str] = mapped_column(String(64), nullable=False)


class AuditClientAddress(Base):
    """The caller's full address for an entry, outside the hashed body (which holds only its
    network), deleted after `PLUME_AUDIT_ADDRESS_DAYS`."""

    __tablename__ = "audit_client_addresses"
    __table_args__ = (
        PrimaryKeyConstraint("organization_id", "seq"),
        Index("audit_client_addresses_recorded_at_idx", "recorded_at"),
    )

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False
    )
    seq: Mapped[int] = mapped_column(BigInteger, nullable=False)
    client_address: Mapped[str] = mapped_column(Text, nullable=False)
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class AuditHead(Base):
    """The latest entry of each chain: appends lock this row, one at a time per chain."""

    __tablename__ = "audit_heads"

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="RESTRICT"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(BigInteger, nullable=False)
    prev_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    hash: Mapped[str] = mapped_column(String(64), nullable=False)
