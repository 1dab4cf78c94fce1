"""Organizations and API keys, the application role and row-level security.

Revision ID: 22c8dd81e551
Revises:
Create Date: 2026-11-27 12:27:39.198566+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "22c8dd81e551"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Row-level security: a row is visible when its organisation is in the transaction's scope,
# which the application publishes in transaction-local settings for each request
# (plume.db.enter_tenant_context). With neither setting (a forgotten scope), nothing matches.
_ID_IN_SCOPE = """(current_setting('plume.all_organizations', true) = 'on'
    OR id = ANY (string_to_array(
        nullif(current_setting('plume.organizations', true), ''), ',')::uuid[]))"""
_IN_SCOPE = """(current_setting('plume.all_organizations', true) = 'on'
    OR organization_id = ANY (string_to_array(
        nullif(current_setting('plume.organizations', true), ''), ',')::uuid[]))"""


def upgrade() -> None:
    # The non-superuser role every request transaction switches to (SET LOCAL ROLE), so
    # that row-level security holds even when the service connects as a superuser.
    # Roles are cluster-wide: another database of the cluster may have created it already.
    op.execute("""
        DO $$ BEGIN
            CREATE ROLE plume_app NOLOGIN NOSUPERUSER NOBYPASSRLS;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
        END $$
    """)
    op.execute("GRANT plume_app TO CURRENT_USER")
    op.execute("GRANT USAGE ON SCHEMA public TO plume_app")
    op.create_table(
        "organizations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column(
            "kind", sa.Enum("operator", "epci", "commune", name="organization_kind"), nullable=False
        ),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("slug", sa.String(length=32), nullable=False),
        sa.Column("parent_id", sa.Uuid(), nullable=True),
        sa.Column("insee_code", sa.String(length=5), nullable=True),
        sa.Column("siren", sa.String(length=9), nullable=True),
        sa.Column(
            "status", sa.Enum("active", "suspended", name="organization_status"), nullable=False
        ),
        sa.Column(
            "policy",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "(kind = 'operator') = (parent_id IS NULL)",
            name=op.f("organizations_only_operator_is_root_check"),
        ),
        sa.CheckConstraint(
            "kind <> 'commune' OR insee_code IS NOT NULL",
            name=op.f("organizations_commune_insee_check"),
        ),
        sa.CheckConstraint(
            "kind <> 'epci' OR siren IS NOT NULL", name=op.f("organizations_epci_siren_check")
        ),
        sa.ForeignKeyConstraint(
            ["parent_id"],
            ["organizations.id"],
            name=op.f("organizations_parent_id_fkey"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("organizations_pkey")),
        sa.UniqueConstraint("insee_code", name=op.f("organizations_insee_code_key")),
        sa.UniqueConstraint("siren", name=op.f("organizations_siren_key")),
        sa.UniqueConstraint("slug", name=op.f("organizations_slug_key")),
    )
    op.create_index(
        op.f("organizations_parent_id_idx"), "organizations", ["parent_id"], unique=False
    )
    op.create_index(
        "organizations_single_operator_idx",
        "organizations",
        ["kind"],
        unique=True,
        postgresql_where=sa.text("kind = 'operator'"),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column(
            "role",
            sa.Enum("operator_admin", "tenant_admin", "agent", name="api_key_role"),
            nullable=False,
        ),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("secret_version", sa.String(length=16), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_by_key_id", sa.Uuid(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["created_by_key_id"],
            ["api_keys.id"],
            name=op.f("api_keys_created_by_key_id_fkey"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("api_keys_organization_id_fkey"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("api_keys_pkey")),
        sa.UniqueConstraint("secret_hash", name=op.f("api_keys_secret_hash_key")),
    )
    op.create_index(
        "api_keys_organization_created_idx",
        "api_keys",
        ["organization_id", "created_at"],
        unique=False,
    )

    # Nothing is ever deleted through the application: keys are revoked, organisations suspended.
    op.execute("GRANT SELECT, INSERT, UPDATE ON organizations TO plume_app")
    op.execute("ALTER TABLE organizations ENABLE ROW LEVEL SECURITY")
    op.execute(
        "CREATE POLICY organizations_tenant_scope ON organizations TO plume_app"
        f" USING {_ID_IN_SCOPE} WITH CHECK {_ID_IN_SCOPE}"
    )
    op.execute("GRANT SELECT, INSERT, UPDATE ON api_keys TO plume_app")
    op.execute("ALTER TABLE api_keys ENABLE ROW LEVEL SECURITY")
    op.execute(
        "CREATE POLICY api_keys_tenant_scope ON api_keys TO plume_app"
        f" USING {_IN_SCOPE} WITH CHECK {_IN_SCOPE}"
    )


def downgrade() -> None:
    op.drop_index("api_keys_organization_created_idx", table_name="api_keys")
    op.drop_table("api_keys")
    op.drop_index(
        "organizations_single_operator_idx",
        table_name="organizations",
        postgresql_where=sa.text("kind = 'operator'"),
    )
    op.drop_index(op.f("organizations_parent_id_idx"), table_name="organizations")
    op.drop_table("organizations")
    sa.Enum(name="api_key_role").drop(op.get_bind(), checkfirst=True)
    sa.Enum(name="organization_status").drop(op.get_bind(), checkfirst=True)
    sa.Enum(name="organization_kind").drop(op.get_bind(), checkfirst=True)
    op.execute("REVOKE USAGE ON SCHEMA public FROM plume_app")
