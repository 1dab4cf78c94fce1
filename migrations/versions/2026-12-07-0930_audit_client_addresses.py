"""Client addresses of audit entries kept apart, and forgotten after a while.

An audit entry's hashed body used to hold the caller's full IP address, which could then
never be shortened without breaking the chain. From this revision on, the body holds the
address truncated to its network (IPv4 /24, IPv6 /48), kept as long as the entry; the full
address goes to `audit_client_addresses`, outside the hash, and is deleted after
`PLUME_AUDIT_ADDRESS_DAYS` by the daily purge. Entries written before keep the full address
in their body until `plume audit purge` removes them (docs/audit.md).

Tenant table: row-level security forced; the application role reads, inserts and deletes
within its scope (the daily purge deletes with the system's scope), never updates.

Revision ID: a73964f8148f
Revises: d4011fff0f73
Create Date: 2026-12-07 09:30:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a73964f8148f"
down_revision: str | None = "d4011fff0f73"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_IN_SCOPE = """(current_setting('plume.all_organizations', true) = 'on'
    OR organization_id = ANY (string_to_array(
        nullif(current_setting('plume.organizations', true), ''), ',')::uuid[]))"""


def upgrade() -> None:
    op.create_table(
        "audit_client_addresses",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("client_address", sa.Text(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("organization_id", "seq"),
    )
    op.create_index(
        "audit_client_addresses_recorded_at_idx", "audit_client_addresses", ["recorded_at"]
    )
    op.execute("GRANT SELECT, INSERT, DELETE ON audit_client_addresses TO plume_app")
    op.execute("ALTER TABLE audit_client_addresses ENABLE ROW LEVEL SECURITY")
    op.execute(
        "CREATE POLICY audit_client_addresses_tenant_scope ON audit_client_addresses"
        f" TO plume_app USING {_IN_SCOPE} WITH CHECK {_IN_SCOPE}"
    )
    op.execute(
        "CREATE POLICY audit_client_addresses_owner ON audit_client_addresses"
        f" TO CURRENT_USER USING {_IN_SCOPE} WITH CHECK {_IN_SCOPE}"
    )
    op.execute("ALTER TABLE audit_client_addresses FORCE ROW LEVEL SECURITY")


def downgrade() -> None:
    op.drop_table("audit_client_addresses")
