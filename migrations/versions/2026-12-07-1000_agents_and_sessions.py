"""Agents (people of an organisation who sign in with ProConnect, OpenID Connect) and their
server-side sessions; the review's verified signer; an organisation's SIRET.

* `agents`: one organisation each; invited by e-mail (status `invited`, no subject), bound
  to the provider's (issuer, subject) at the first sign-in (`active`), `suspended` by a
  tenant admin. The application role reads, invites and updates them within the scope, and
  never moves one to another organisation (no UPDATE of organization_id).
* `agent_sessions`: the opaque token is stored as its HMAC (`token_hash`), which the
  application role may not read (column privileges), as for API keys; it opens sessions
  and revokes them within the scope. A session is found before its caller is known by
  `agent_session_lookup`, the person signing in by `agent_sign_in_lookup`: SECURITY DEFINER
  functions owned by `plume_definer`, whose policies on the two tables let it through only
  as the current user (docs/decisions/0008).
* Both tables are tenant tables: row-level security forced, per-command policies for the
  application role, the owner's policy the same scope.
* `drafts.reviewed_by_agent_id`: the signed-in agent who reviewed a draft (the reviewer's
  identity is then verified); earlier reviews have none.
* `organizations.siret`: the establishment's SIRET, checked against the one ProConnect
  sends at sign-in; set at creation, or by the operator through `organization_set_siret`
  (SECURITY DEFINER, the system's scope only, owned by the migrating role like
  `organization_update`): the application role updates no organisation's column.

The functions' sources are services/plume/identity/sql/*.sql and
services/plume/organizations/sql/organization_set_siret.sql; this revision holds frozen
copies of them.

Revision ID: 3737e1016ffc
Revises: a73964f8148f
Create Date: 2026-12-07 10:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "3737e1016ffc"
down_revision: str | None = "a73964f8148f"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The transaction's scope, as in every earlier revision (plume.db.enter_tenant_context).
_IN_SCOPE = """(current_setting('plume.all_organizations', true) = 'on'
    OR organization_id = ANY (string_to_array(
        nullif(current_setting('plume.organizations', true), ''), ',')::uuid[]))"""
# In the body of a function plume_definer owns.
_DEFINER = "(current_user = 'plume_definer')"

# What the application role may change of an agent: never its organisation.
_AGENT_UPDATABLE = (
    "email, subject, issuer, given_name, usual_name, title, role, status, last_login_at, updated_at"
)
# Every column of agent_sessions but token_hash.
_SESSION_COLUMNS = (
    "id, organization_id, agent_id, created_at, last_seen_at, expires_at, revoked_at, acr,"
    " user_agent, id_token"
)
_FUNCTIONS = ["agent_session_lookup(text, integer)", "agent_sign_in_lookup(text, text, text)"]

# services/plume/identity/sql/agent_session_lookup.sql
AGENT_SESSION_LOOKUP = r"""
-- agent_session_lookup: the signed-in agent's session whose opaque token hashes to p_hash
-- (its HMAC under the server secret), with its agent, the agent's organisation, the
-- organisation's parent and grandparent (the chain is at most three levels deep) and, for
-- an EPCI's tenant admin, the EPCI's communes (its scope). No row: no such session.
--
-- Authentication (plume.identity.sessions) calls it on every request that carries the
-- session cookie, before the caller is known, with no tenant context: the application role
-- sees no session, no agent and no organisation then, and never reads a session's hash
-- (column privileges). Nothing is cached: a revoked or expired session, a suspended agent
-- or a suspended organisation (or ancestor) is refused on the next request. In the same
-- call, a session that may be used records its use (last_seen_at, which its idle expiry
-- counts from), at most once a minute.
--
-- The source of the function: tests/runtime/test_sql_sources.py checks that the migrated
-- database's function is this text. A change takes a new migration holding a frozen copy.
CREATE OR REPLACE FUNCTION agent_session_lookup(p_hash text, p_idle_seconds integer)
RETURNS TABLE (agent_session public.agent_sessions, agent public.agents,
               organization public.organizations, parent public.organizations,
               grandparent public.organizations, children uuid[])
LANGUAGE plpgsql
-- Runs as its owner, plume_definer, as api_key_lookup does (docs/architecture.md,
-- row-level security).
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    matched public.agent_sessions;
    found_agent public.agents;
    level1 public.organizations;
    level2 public.organizations;
    level3 public.organizations;
BEGIN
    SELECT s.* INTO matched FROM public.agent_sessions AS s WHERE s.token_hash = p_hash;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    SELECT a.* INTO found_agent FROM public.agents AS a WHERE a.id = matched.agent_id;
    SELECT o.* INTO level1 FROM public.organizations AS o WHERE o.id = found_agent.organization_id;
    SELECT o.* INTO level2 FROM public.organizations AS o WHERE o.id = level1.parent_id;
    SELECT o.* INTO level3 FROM public.organizations AS o WHERE o.id = level2.parent_id;
    -- Its use, if it may be used: the caller refuses the others, whose last use stays.
    IF matched.revoked_at IS NULL
       AND matched.expires_at > now()
       AND matched.last_seen_at > now() - make_interval(secs => p_idle_seconds)
       AND found_agent.status = 'active'
       AND level1.status = 'active'
       AND (level2.id IS NULL OR level2.status = 'active')
       AND (level3.id IS NULL OR level3.status = 'active')
       AND matched.last_seen_at < now() - interval '60 seconds'
    THEN
        UPDATE public.agent_sessions AS s SET last_seen_at = now()
        WHERE s.id = matched.id
        RETURNING s.* INTO matched;
    END IF;
    RETURN QUERY
    SELECT matched, found_agent, level1,
           CASE WHEN level2.id IS NULL THEN NULL ELSE level2 END,
           CASE WHEN level3.id IS NULL THEN NULL ELSE level3 END,
           CASE WHEN found_agent.role = 'tenant_admin' AND level1.kind = 'epci' THEN
               ARRAY(SELECT c.id FROM public.organizations AS c
                     WHERE c.parent_id = level1.id ORDER BY c.id)
           END;
END
$$;
"""

# services/plume/identity/sql/agent_sign_in_lookup.sql
AGENT_SIGN_IN_LOOKUP = r"""
-- agent_sign_in_lookup: who may sign in with this identity from the OpenID provider: the
-- agent already bound to (p_issuer, p_subject), or else every invitation still pending for
-- the e-mail address (case-insensitive), oldest first; each with the agent's organisation,
-- its parent and grandparent (the chain is at most three levels deep). No row: nobody
-- invited this person.
--
-- The callback of the sign-in (plume.identity.service) calls it before the caller is known,
-- with no tenant context. It reads only: the decision (the SIRET, the statuses) is the
-- caller's, and binding the agent and opening the session are done afterwards by the
-- application role, within the chosen organisation's scope.
--
-- The source of the function: tests/runtime/test_sql_sources.py checks that the migrated
-- database's function is this text. A change takes a new migration holding a frozen copy.
CREATE OR REPLACE FUNCTION agent_sign_in_lookup(p_issuer text, p_subject text, p_email text)
RETURNS TABLE (agent public.agents, organization public.organizations,
               parent public.organizations, grandparent public.organizations)
LANGUAGE plpgsql
-- Runs as its owner, plume_definer, as api_key_lookup does (docs/architecture.md,
-- row-level security).
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    candidate public.agents;
    level1 public.organizations;
    level2 public.organizations;
    level3 public.organizations;
    bound boolean;
BEGIN
    bound := EXISTS (SELECT FROM public.agents AS a
                     WHERE a.issuer = p_issuer AND a.subject = p_subject);
    FOR candidate IN
        SELECT a.* FROM public.agents AS a
        WHERE (bound AND a.issuer = p_issuer AND a.subject = p_subject)
           OR (NOT bound AND a.subject IS NULL AND a.status = 'invited'
               AND lower(a.email) = lower(p_email))
        ORDER BY a.created_at, a.id
    LOOP
        SELECT o.* INTO level1 FROM public.organizations AS o
        WHERE o.id = candidate.organization_id;
        SELECT o.* INTO level2 FROM public.organizations AS o WHERE o.id = level1.parent_id;
        SELECT o.* INTO level3 FROM public.organizations AS o WHERE o.id = level2.parent_id;
        RETURN QUERY
        SELECT candidate, level1,
               CASE WHEN level2.id IS NULL THEN NULL ELSE level2 END,
               CASE WHEN level3.id IS NULL THEN NULL ELSE level3 END;
    END LOOP;
END
$$;
"""


# services/plume/organizations/sql/organization_set_siret.sql
ORGANIZATION_SET_SIRET = r"""
-- organization_set_siret: the operator sets (or, with NULL, clears) an organisation's SIRET
-- (PATCH /v1/admin/organizations/{id}), which ProConnect's `siret` claim must match when an
-- agent of the organisation signs in (docs/identity.md). Only with the system's scope (an
-- operator admin, the command line); answers whether the organisation was found. A SIRET
-- belongs to one organisation at most (unique constraint).
--
-- The application role may not UPDATE an organisation's columns: a tenant's transaction
-- cannot choose which establishment's agents it admits.
--
-- The source of the function: tests/runtime/test_sql_sources.py checks that the migrated
-- database's function is this text. A change takes a new migration holding a frozen copy.
CREATE OR REPLACE FUNCTION organization_set_siret(p_id uuid, p_siret text)
RETURNS boolean
LANGUAGE plpgsql
-- Runs as its owner, with the system's scope only.
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF current_setting('plume.all_organizations', true) IS DISTINCT FROM 'on' THEN
        RAISE EXCEPTION 'only the operator changes an organisation'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    UPDATE public.organizations AS o
    SET siret = p_siret, updated_at = now()
    WHERE o.id = p_id;
    RETURN FOUND;
END
$$;
"""


def _timestamps() -> list[sa.Column[object]]:
    return [
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
    ]


def _tenant_table(table: str) -> None:
    op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY {table}_owner ON {table} TO CURRENT_USER"
        f" USING {_IN_SCOPE} WITH CHECK {_IN_SCOPE}"
    )
    op.execute(f"CREATE POLICY {table}_read ON {table} FOR SELECT TO plume_app USING {_IN_SCOPE}")
    op.execute(
        f"CREATE POLICY {table}_create ON {table} FOR INSERT TO plume_app WITH CHECK {_IN_SCOPE}"
    )
    op.execute(
        f"CREATE POLICY {table}_change ON {table} FOR UPDATE TO plume_app"
        f" USING {_IN_SCOPE} WITH CHECK {_IN_SCOPE}"
    )
    op.execute(
        f"CREATE POLICY {table}_definer ON {table} TO plume_definer"
        f" USING {_DEFINER} WITH CHECK {_DEFINER}"
    )
    op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")


def upgrade() -> None:
    op.add_column("organizations", sa.Column("siret", sa.String(length=14), nullable=True))
    op.create_unique_constraint(op.f("organizations_siret_key"), "organizations", ["siret"])

    op.create_table(
        "agents",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("issuer", sa.String(length=500), nullable=True),
        sa.Column("subject", sa.String(length=255), nullable=True),
        sa.Column("given_name", sa.String(length=200), nullable=True),
        sa.Column("usual_name", sa.String(length=200), nullable=True),
        sa.Column("title", sa.String(length=200), nullable=True),
        sa.Column("role", sa.Enum("agent", "tenant_admin", name="agent_role"), nullable=False),
        sa.Column(
            "status",
            sa.Enum("invited", "active", "suspended", name="agent_status"),
            nullable=False,
        ),
        sa.Column("invited_by_key_id", sa.Uuid(), nullable=True),
        sa.Column("invited_by_agent_id", sa.Uuid(), nullable=True),
        sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        *_timestamps(),
        sa.CheckConstraint("(issuer IS NULL) = (subject IS NULL)", name=op.f("agents_bound_check")),
        sa.CheckConstraint(
            "status <> 'active' OR subject IS NOT NULL", name=op.f("agents_active_bound_check")
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("agents_organization_id_fkey"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["invited_by_key_id"],
            ["api_keys.id"],
            name=op.f("agents_invited_by_key_id_fkey"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["invited_by_agent_id"],
            ["agents.id"],
            name=op.f("agents_invited_by_agent_id_fkey"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("agents_pkey")),
        sa.UniqueConstraint("issuer", "subject", name="agents_issuer_subject_key"),
    )
    op.create_index(
        "agents_organization_email_idx",
        "agents",
        ["organization_id", sa.text("lower(email)")],
        unique=True,
    )
    op.create_index("agents_email_idx", "agents", [sa.text("lower(email)")])

    op.create_table(
        "agent_sessions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("agent_id", sa.Uuid(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column(
            "last_seen_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("acr", sa.String(length=100), nullable=True),
        sa.Column("user_agent", sa.String(length=300), nullable=True),
        sa.Column("id_token", sa.Text(), nullable=True),
        *_timestamps(),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("agent_sessions_organization_id_fkey"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["agent_id"],
            ["agents.id"],
            name=op.f("agent_sessions_agent_id_fkey"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("agent_sessions_pkey")),
        sa.UniqueConstraint("token_hash", name=op.f("agent_sessions_token_hash_key")),
    )
    op.create_index(
        "agent_sessions_agent_created_idx", "agent_sessions", ["agent_id", "created_at"]
    )

    op.add_column("drafts", sa.Column("reviewed_by_agent_id", sa.Uuid(), nullable=True))
    op.create_foreign_key(
        op.f("drafts_reviewed_by_agent_id_fkey"),
        "drafts",
        "agents",
        ["reviewed_by_agent_id"],
        ["id"],
        ondelete="SET NULL",
    )

    op.execute("GRANT SELECT, INSERT ON agents TO plume_app")
    op.execute(f"GRANT UPDATE ({_AGENT_UPDATABLE}) ON agents TO plume_app")
    op.execute(f"GRANT SELECT ({_SESSION_COLUMNS}) ON agent_sessions TO plume_app")
    op.execute("GRANT INSERT ON agent_sessions TO plume_app")
    op.execute("GRANT UPDATE (revoked_at) ON agent_sessions TO plume_app")
    op.execute("GRANT SELECT ON agents TO plume_definer")
    op.execute("GRANT SELECT, UPDATE ON agent_sessions TO plume_definer")
    for table in ("agents", "agent_sessions"):
        _tenant_table(table)

    op.execute(AGENT_SESSION_LOOKUP)
    op.execute(AGENT_SIGN_IN_LOOKUP)
    for signature in _FUNCTIONS:
        op.execute(f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC")
        op.execute(f"GRANT EXECUTE ON FUNCTION {signature} TO plume_app")
        op.execute(f"ALTER FUNCTION {signature} OWNER TO plume_definer")
    op.execute(ORGANIZATION_SET_SIRET)
    op.execute("REVOKE ALL ON FUNCTION organization_set_siret(uuid, text) FROM PUBLIC")
    op.execute("GRANT EXECUTE ON FUNCTION organization_set_siret(uuid, text) TO plume_app")


def downgrade() -> None:
    op.execute("DROP FUNCTION organization_set_siret(uuid, text)")
    for signature in _FUNCTIONS:
        op.execute(f"DROP FUNCTION {signature}")
    op.drop_constraint(op.f("drafts_reviewed_by_agent_id_fkey"), "drafts", type_="foreignkey")
    op.drop_column("drafts", "reviewed_by_agent_id")
    op.execute("REVOKE ALL ON agent_sessions FROM plume_definer")
    op.execute("REVOKE ALL ON agents FROM plume_definer")
    op.drop_table("agent_sessions")
    op.drop_table("agents")
    op.execute("DROP TYPE agent_status")
    op.execute("DROP TYPE agent_role")
    op.drop_constraint(op.f("organizations_siret_key"), "organizations", type_="unique")
    op.drop_column("organizations", "siret")
