"""Drafts can be erased: their texts forgotten for good, their record kept.

A draft erased (by its author or a tenant admin, or by the daily retention purge) keeps its
id, kind, dates, review, usage and `text_digest` (SHA-256 of the text it had); its request,
title, text, sections, warnings, ACTES nature, review comment and job progress are emptied,
and its status becomes `erased` at `erased_at`. The retention purge looks drafts up by
organisation and creation date (the existing `drafts_organization_created_idx`).

No privilege changes: the application role already updates drafts and deletes idempotent
replays within its scope.

Revision ID: ea90db021ed0
Revises: 7c705001a325
Create Date: 2026-12-06 17:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "ea90db021ed0"
down_revision: str | None = "7c705001a325"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # PostgreSQL 12+: allowed in a transaction (the value is usable once it commits).
    op.execute("ALTER TYPE draft_status ADD VALUE IF NOT EXISTS 'erased'")
    op.add_column("drafts", sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("drafts", sa.Column("text_digest", sa.String(length=64), nullable=True))


def downgrade() -> None:
    op.drop_column("drafts", "text_digest")
    op.drop_column("drafts", "erased_at")
    # An enum value cannot be dropped; erased drafts are shown as rejected by an older
    # version (their texts are gone either way).
    op.execute("UPDATE drafts SET status = 'rejected' WHERE status = 'erased'")
