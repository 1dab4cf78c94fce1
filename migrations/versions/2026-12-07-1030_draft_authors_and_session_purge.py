"""A draft records the signed-in agent who asked for it; ended sessions can be purged.

`drafts.created_by_agent_id`: the author when an agent signed in with ProConnect wrote the
draft (as `created_by_key_id` and `created_by_client_id` record a key or an OAuth2 client);
its author may erase it. `agent_sessions` may be deleted by the application role within its
scope: the daily purge removes sessions that expired or were revoked more than a week ago
(a session is a cookie's server side, not a record to keep).

Revision ID: 9f861d1ab81d
Revises: 3737e1016ffc
Create Date: 2026-12-07 10:30:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "9f861d1ab81d"
down_revision: str | None = "3737e1016ffc"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_IN_SCOPE = """(current_setting('plume.all_organizations', true) = 'on'
    OR organization_id = ANY (string_to_array(
        nullif(current_setting('plume.organizations', true), ''), ',')::uuid[]))"""


def upgrade() -> None:
    op.add_column("drafts", sa.Column("created_by_agent_id", sa.Uuid(), nullable=True))
    op.create_foreign_key(
        "drafts_created_by_agent_id_fkey",
        "drafts",
        "agents",
        ["created_by_agent_id"],
        ["id"],
        ondelete="SET NULL",
    )
    op.execute("GRANT DELETE ON agent_sessions TO plume_app")
    op.execute(
        f"CREATE POLICY agent_sessions_purge ON agent_sessions FOR DELETE TO plume_app"
        f" USING {_IN_SCOPE}"
    )


def downgrade() -> None:
    op.execute("DROP POLICY agent_sessions_purge ON agent_sessions")
    op.execute("REVOKE DELETE ON agent_sessions FROM plume_app")
    op.drop_constraint("drafts_created_by_agent_id_fkey", "drafts", type_="foreignkey")
    op.drop_column("drafts", "created_by_agent_id")
