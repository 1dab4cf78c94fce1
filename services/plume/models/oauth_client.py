"""OAuth2 clients (client credentials grant): a machine of a tenant's that asks Plume for
short-lived access tokens with its `client_id` and secret, instead of holding an API key.
The secret is stored only as an HMAC, as a key's is (docs/decisions/0002)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, DateTime, Enum, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from plume.db import Base, TimestampedMixin, new_id
from plume.models.api_key import ApiKeyRole


class OAuthClient(TimestampedMixin, Base):
    __tablename__ = "oauth_clients"
    __table_args__ = (
        Index("oauth_clients_organization_created_idx", "organization_id", "created_at"),
        # The operator's administrators use keys: a client acts for one tenant.
        CheckConstraint("role IN ('tenant_admin', 'agent')", name="role"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="RESTRICT"), nullable=False
    )
    # The public identifier the client authenticates with ("plc_…"), and the tokens' `sub`.
    client_id: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    role: Mapped[ApiKeyRole] = mapped_column(
        Enum(
            ApiKeyRole,
            name="api_key_role",
            values_callable=lambda m: [r.value for r in m],
            create_type=False,
        ),
        nullable=False,
    )
    # HMAC-SHA-256 of the secret, keyed by the server secret, hex; never loaded with the
    # client: the application role may not read it (oauth_client_lookup checks it).
    secret_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True, deferred=True)
    # Fingerprint of the server secret that produced secret_hash (rotation).
    secret_version: Mapped[str] = mapped_column(String(16), nullable=False)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_by_key_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("api_keys.id", ondelete="SET NULL")
    )
