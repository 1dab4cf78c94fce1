"""Drafts: documents, their review and synthèse jobs, under row-level security.

Revision ID: c9c7f39f1306
Revises: 22c8dd81e551
Create Date: 2026-11-27 13:16:24.297667+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "c9c7f39f1306"
down_revision: str | None = "22c8dd81e551"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Row-level security: a row is visible when its organisation is in the transaction's scope,
# which the application publishes in transaction-local settings for each request
# (plume.db.enter_tenant_context). With neither setting (a forgotten scope), nothing matches.
_IN_SCOPE = """(current_setting('plume.all_organizations', true) = 'on'
    OR organization_id = ANY (string_to_array(
        nullif(current_setting('plume.organizations', true), ''), ',')::uuid[]))"""


def upgrade() -> None:
    op.create_table(
        "drafts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("created_by_key_id", sa.Uuid(), nullable=True),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column(
            "status",
            sa.Enum("draft", "processing", "approved", "rejected", "failed", name="draft_status"),
            nullable=False,
        ),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("request", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("model_group", sa.String(length=64), nullable=True),
        sa.Column("text", sa.Text(), server_default="", nullable=False),
        sa.Column("sections", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column(
            "warnings",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column("acte_nature", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("ai_notice", sa.Text(), nullable=False),
        sa.Column("provider", sa.String(length=64), nullable=True),
        sa.Column("model", sa.String(length=200), nullable=True),
        sa.Column("prompt_tokens", sa.Integer(), server_default="0", nullable=False),
        sa.Column("completion_tokens", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "cost_eur", sa.Numeric(precision=14, scale=6), server_default="0", nullable=False
        ),
        sa.Column("fallbacks", sa.Integer(), server_default="0", nullable=False),
        sa.Column("failure_reason", sa.Text(), nullable=True),
        sa.Column("progress", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("review_decision", sa.String(length=16), nullable=True),
        sa.Column("reviewer_name", sa.String(length=200), nullable=True),
        sa.Column("reviewer_title", sa.String(length=200), nullable=True),
        sa.Column("review_comment", sa.Text(), nullable=True),
        sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reviewed_by_key_id", sa.Uuid(), nullable=True),
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
        sa.ForeignKeyConstraint(
            ["created_by_key_id"],
            ["api_keys.id"],
            name=op.f("drafts_created_by_key_id_fkey"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("drafts_organization_id_fkey"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["reviewed_by_key_id"],
            ["api_keys.id"],
            name=op.f("drafts_reviewed_by_key_id_fkey"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("drafts_pkey")),
    )
    op.create_index(
        "drafts_organization_created_idx", "drafts", ["organization_id", "created_at"], unique=False
    )
    op.create_index(
        "drafts_pending_jobs_idx",
        "drafts",
        ["created_at"],
        unique=False,
        postgresql_where=sa.text("status = 'processing'"),
    )

    op.execute("GRANT SELECT, INSERT, UPDATE ON drafts TO plume_app")
    op.execute("ALTER TABLE drafts ENABLE ROW LEVEL SECURITY")
    op.execute(
        "CREATE POLICY drafts_tenant_scope ON drafts TO plume_app"
        f" USING {_IN_SCOPE} WITH CHECK {_IN_SCOPE}"
    )


def downgrade() -> None:
    op.drop_index(
        "drafts_pending_jobs_idx",
        table_name="drafts",
        postgresql_where=sa.text("status = 'processing'"),
    )
    op.drop_index("drafts_organization_created_idx", table_name="drafts")
    op.drop_table("drafts")
    sa.Enum(name="draft_status").drop(op.get_bind(), checkfirst=True)
