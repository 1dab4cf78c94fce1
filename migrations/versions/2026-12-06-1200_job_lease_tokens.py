"""Synthèse jobs: a lease owned by the worker that claimed it, and turns taken fairly.

`lease_token` is set when a worker claims a job; renewing, extending and completing the job
require it, so that a worker whose lease lapsed and was taken over can neither renew the
new holder's lease nor store the job twice. `claimed_at` records each claim: the queue
gives the next turn to the organisation whose last claim is the oldest (an index serves
that look-up per organisation).

Revision ID: f8a7da3f8231
Revises: 23e4cbbcde0b
Create Date: 2026-12-06 12:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "f8a7da3f8231"
down_revision: str | None = "23e4cbbcde0b"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("drafts", sa.Column("lease_token", sa.Uuid(), nullable=True))
    op.add_column("drafts", sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index(
        "drafts_job_turns_idx",
        "drafts",
        ["organization_id", "claimed_at"],
        unique=False,
        postgresql_where=sa.text("claimed_at IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index(
        "drafts_job_turns_idx",
        table_name="drafts",
        postgresql_where=sa.text("claimed_at IS NOT NULL"),
    )
    op.drop_column("drafts", "claimed_at")
    op.drop_column("drafts", "lease_token")
