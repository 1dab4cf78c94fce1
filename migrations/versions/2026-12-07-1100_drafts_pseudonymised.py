"""A draft's usage says how many residents' identifiers its provider saw as placeholders
(docs/privacy.md): `drafts.pseudonymised`, 0 for the drafts written before.

Revision ID: 3b9e4a7d2c10
Revises: 9f861d1ab81d
Create Date: 2026-12-07 11:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "3b9e4a7d2c10"
down_revision: str | None = "9f861d1ab81d"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "drafts",
        sa.Column("pseudonymised", sa.Integer(), server_default="0", nullable=False),
    )


def downgrade() -> None:
    op.drop_column("drafts", "pseudonymised")
