"""The operator's default quotas for new organisations, per kind (EPCI, commune).

`default_quotas` holds, for each kind an organisation is created with, the quotas a new
organisation of that kind is given, copied into its own quotas in the transaction that
creates it (never afterwards: changing the defaults changes no existing organisation). The
table is empty: an organisation has no quota until one is set, unless the operator
configures defaults.

It belongs to no tenant: row-level security, forced as on every tenant table, lets only the
system's scope (the operator's requests, the command line) read or write it, for the
application role and for the owner alike; a tenant's transaction sees no row. The
application role reads, inserts and deletes rows (a new list replaces the old one), and
updates none.

Revision ID: 7c705001a325
Revises: f8a7da3f8231
Create Date: 2026-12-06 15:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "7c705001a325"
down_revision: str | None = "f8a7da3f8231"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The system's scope, as in every earlier revision (plume.db.enter_tenant_context).
_ALL = "(current_setting('plume.all_organizations', true) = 'on')"


def upgrade() -> None:
    op.create_table(
        "default_quotas",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("metric", sa.String(length=16), nullable=False),
        sa.Column("period", sa.String(length=16), nullable=False),
        sa.Column("limit", sa.Numeric(precision=20, scale=6), nullable=False),
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
        sa.CheckConstraint('"limit" > 0', name=op.f("default_quotas_limit_positive_check")),
        sa.CheckConstraint("kind IN ('epci', 'commune')", name=op.f("default_quotas_kind_check")),
        sa.CheckConstraint(
            "metric IN ('requests', 'tokens', 'cost_eur')",
            name=op.f("default_quotas_metric_check"),
        ),
        sa.CheckConstraint(
            "period IN ('minute', 'day', 'month')", name=op.f("default_quotas_period_check")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("default_quotas_pkey")),
        sa.UniqueConstraint("kind", "metric", "period", name="default_quotas_kind_key"),
    )
    op.execute("GRANT SELECT, INSERT, DELETE ON default_quotas TO plume_app")
    op.execute("ALTER TABLE default_quotas ENABLE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY default_quotas_system ON default_quotas TO plume_app"
        f" USING {_ALL} WITH CHECK {_ALL}"
    )
    op.execute(
        f"CREATE POLICY default_quotas_owner ON default_quotas TO CURRENT_USER"
        f" USING {_ALL} WITH CHECK {_ALL}"
    )
    op.execute("ALTER TABLE default_quotas FORCE ROW LEVEL SECURITY")


def downgrade() -> None:
    op.drop_table("default_quotas")
