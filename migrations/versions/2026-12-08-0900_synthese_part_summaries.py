"""A synthèse job keeps the summaries of the parts it has done (`drafts.part_summaries`, by
the part's digest) until it ends, so that an attempt resuming it after a crash does not ask
the provider, and pay, for them again (docs/drafting.md).

Revision ID: 72058f730b04
Revises: 3b9e4a7d2c10
Create Date: 2026-12-08 09:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "72058f730b04"
down_revision: str | None = "3b9e4a7d2c10"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("drafts", sa.Column("part_summaries", postgresql.JSONB(), nullable=True))


def downgrade() -> None:
    op.drop_column("drafts", "part_summaries")
