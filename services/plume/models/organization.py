"""The organisation tree: operator -> EPCI -> commune."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import CheckConstraint, DateTime, Enum, ForeignKey, Index, String, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from plume.db import Base, TimestampedMixin, new_id


class OrganizationKind(StrEnum):
    OPERATOR = "operator"
    EPCI = "epci"
    COMMUNE = "commune"


class OrganizationStatus(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"


def _enum(cls: type[StrEnum], name: str) -> Enum:
    return Enum(cls, name=name, values_callable=lambda members: [m.value for m in members])


class Organization(TimestampedMixin, Base):
    __tablename__ = "organizations"
    __table_args__ = (
        CheckConstraint("(kind = 'operator') = (parent_id IS NULL)", name="only_operator_is_root"),
        CheckConstraint("kind <> 'commune' OR insee_code IS NOT NULL", name="commune_insee"),
        CheckConstraint("kind <> 'epci' OR siren IS NOT NULL", name="epci_siren"),
        # At most one operator: a unique partial index on a constant.
        Index(
            "organizations_single_operator_idx",
            "kind",
            unique=True,
            postgresql_where=text("kind = 'operator'"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    kind: Mapped[OrganizationKind] = mapped_column(
        _enum(OrganizationKind, "organization_kind"), nullable=False
    )
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    slug: Mapped[str] = mapped_column(String(32), nullable=False, unique=True)
    parent_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("organizations.id", ondelete="RESTRICT"), index=True
    )
    insee_code: Mapped[str | None] = mapped_column(String(5), unique=True)
    siren: Mapped[str | None] = mapped_column(String(9), unique=True)
    # The establishment's SIRET: ProConnect sends the signing-in agent's, which must match.
    siret: Mapped[str | None] = mapped_column(String(14), unique=True)
    status: Mapped[OrganizationStatus] = mapped_column(
        _enum(OrganizationStatus, "organization_status"),
        nullable=False,
        default=OrganizationStatus.ACTIVE,
    )
    # Only the keys the operator set at this level; the effective policy is computed.
    policy: Mapped[dict[str, Any]] = mapped_column(
        JSONB, nullable=False, default=dict, server_default=text("'{}'::jsonb")
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now(), nullable=False
    )
