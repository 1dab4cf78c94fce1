"""OAuth2 clients (client credentials grant, issue 16): `oauth_clients`, and the drafts a
client's token asked for.

* oauth_clients: a tenant table, as api_keys is (decisions 0001, 0002 and 0008): row-level
  security forced; the application role reads every column but `secret_hash` within the
  scope and inserts within the scope, and updates nothing: a client is looked up, touched
  and re-hashed by `oauth_client_lookup` (SECURITY DEFINER, owned by plume_definer: it runs
  before there is a scope), revoked by `oauth_client_revoke` (within the caller's scope).
  Its role is `api_key_role`, but never operator_admin.
* drafts.created_by_client_id: the client a draft was asked by, as created_by_key_id names
  a key: a synthèse job acts for it, and stops if it is revoked.

The functions' sources are services/plume/credentials/sql/oauth_client_lookup.sql and
oauth_client_revoke.sql; this revision holds frozen copies of them.

Revision ID: d4011fff0f73
Revises: ea90db021ed0
Create Date: 2026-12-07 09:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "d4011fff0f73"
down_revision: str | None = "ea90db021ed0"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The transaction's scope, as in every earlier revision (plume.db.enter_tenant_context).
_IN_SCOPE = """(current_setting('plume.all_organizations', true) = 'on'
    OR organization_id = ANY (string_to_array(
        nullif(current_setting('plume.organizations', true), ''), ',')::uuid[]))"""
# In the body of a function plume_definer owns (not in a session of one of its members).
_DEFINER = "(current_user = 'plume_definer')"

# Every column of oauth_clients but secret_hash.
_CLIENT_COLUMNS = (
    "id, organization_id, client_id, name, role, secret_version, revoked_at, last_used_at,"
    " created_by_key_id, created_at"
)

# services/plume/credentials/sql/oauth_client_lookup.sql
OAUTH_CLIENT_LOOKUP = r"""
-- oauth_client_lookup: the OAuth2 client p_client_id (its public identifier, `plc_…`), with
-- its organisation, the organisation's parent and grandparent (the chain is at most three
-- levels deep) and, for an EPCI's tenant admin, the EPCI's communes (its scope). No row: no
-- such client, or p_hashes does not hold its secret's hash.
--
-- Two callers, before the caller is known and with no tenant context (the application role
-- sees no client and no organisation then):
-- * the token endpoint (plume.credentials.oauth) authenticates the client: p_hashes holds
--   the HMAC of the secret it sent under the current server secret first, then under each
--   previous one; a client found under a previous secret is re-hashed under the current
--   one (p_hashes[1], p_version);
-- * the verification of an access token (plume.credentials.tokens), whose signature Plume
--   checked: p_hashes is NULL, the client is looked up by its identifier alone, on every
--   request, so that a revoked client's tokens stop working at once.
-- A client that may be used records its use (last_used_at), at most once a minute.
--
-- The application role may not read a client's hash (column privileges): knowing a hash is
-- knowing the secret, or the server secret.
--
-- The source of the function: tests/runtime/test_sql_sources.py checks that the migrated
-- database's function is this text. A change takes a new migration holding a frozen copy.
CREATE OR REPLACE FUNCTION oauth_client_lookup(p_client_id text, p_hashes text[], p_version text)
RETURNS TABLE (oauth_client public.oauth_clients, organization public.organizations,
               parent public.organizations, grandparent public.organizations,
               children uuid[])
LANGUAGE plpgsql
-- Runs as its owner, plume_definer, as api_key_lookup does (docs/architecture.md,
-- row-level security).
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    matched public.oauth_clients;
    level1 public.organizations;
    level2 public.organizations;
    level3 public.organizations;
BEGIN
    SELECT c.* INTO matched
    FROM public.oauth_clients AS c
    WHERE c.client_id = p_client_id
      AND (p_hashes IS NULL OR c.secret_hash = ANY (p_hashes));
    IF NOT FOUND THEN
        RETURN;
    END IF;
    -- Found under a previous secret: re-hashed under the current one.
    IF p_hashes IS NOT NULL AND matched.secret_hash <> p_hashes[1] THEN
        UPDATE public.oauth_clients AS c SET secret_hash = p_hashes[1], secret_version = p_version
        WHERE c.id = matched.id
        RETURNING c.* INTO matched;
    END IF;
    SELECT o.* INTO level1 FROM public.organizations AS o WHERE o.id = matched.organization_id;
    SELECT o.* INTO level2 FROM public.organizations AS o WHERE o.id = level1.parent_id;
    SELECT o.* INTO level3 FROM public.organizations AS o WHERE o.id = level2.parent_id;
    -- Its use, if it may be used (not revoked, no level suspended): the caller refuses the
    -- others, whose last use stays what it was.
    IF matched.revoked_at IS NULL
       AND level1.status = 'active'
       AND (level2.id IS NULL OR level2.status = 'active')
       AND (level3.id IS NULL OR level3.status = 'active')
       AND (matched.last_used_at IS NULL OR matched.last_used_at < now() - interval '60 seconds')
    THEN
        UPDATE public.oauth_clients AS c SET last_used_at = now()
        WHERE c.id = matched.id
        RETURNING c.* INTO matched;
    END IF;
    RETURN QUERY
    SELECT matched, level1,
           CASE WHEN level2.id IS NULL THEN NULL ELSE level2 END,
           CASE WHEN level3.id IS NULL THEN NULL ELSE level3 END,
           CASE WHEN matched.role = 'tenant_admin' AND level1.kind = 'epci' THEN
               ARRAY(SELECT c.id FROM public.organizations AS c
                     WHERE c.parent_id = level1.id ORDER BY c.id)
           END;
END
$$;
"""

# services/plume/credentials/sql/oauth_client_revoke.sql
OAUTH_CLIENT_REVOKE = r"""
-- oauth_client_revoke: revoke the OAuth2 client p_id, if the transaction's scope holds its
-- organisation; answers when it was revoked (now, or earlier if it already was), NULL if no
-- such client is in scope. Its access tokens stop working at once: every request bearing
-- one looks the client up (oauth_client_lookup).
--
-- The application role has no UPDATE on oauth_clients: a client's role and revocation
-- change only here (revocation) or not at all, and a revoked client stays revoked.
--
-- The source of the function: tests/runtime/test_sql_sources.py checks that the migrated
-- database's function is this text. A change takes a new migration holding a frozen copy.
CREATE OR REPLACE FUNCTION oauth_client_revoke(p_id uuid)
RETURNS timestamptz
LANGUAGE plpgsql
-- Runs as its owner, within the caller's scope: the owner's row-level policies (the table
-- forces row-level security) show it only the clients of the transaction's scope.
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    revoked timestamptz;
BEGIN
    SELECT c.revoked_at INTO revoked
    FROM public.oauth_clients AS c
    WHERE c.id = p_id
      AND (coalesce(current_setting('plume.all_organizations', true) = 'on', false)
           OR c.organization_id = ANY (string_to_array(
               nullif(current_setting('plume.organizations', true), ''), ',')::uuid[]))
    FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    IF revoked IS NULL THEN
        UPDATE public.oauth_clients AS c SET revoked_at = now() WHERE c.id = p_id
        RETURNING c.revoked_at INTO revoked;
    END IF;
    RETURN revoked;
END
$$;
"""


def upgrade() -> None:
    op.create_table(
        "oauth_clients",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column(
            "role",
            postgresql.ENUM(
                "operator_admin", "tenant_admin", "agent", name="api_key_role", create_type=False
            ),
            nullable=False,
        ),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("secret_version", sa.String(length=16), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_by_key_id", sa.Uuid(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "role IN ('tenant_admin', 'agent')", name=op.f("oauth_clients_role_check")
        ),
        sa.ForeignKeyConstraint(
            ["created_by_key_id"],
            ["api_keys.id"],
            name=op.f("oauth_clients_created_by_key_id_fkey"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("oauth_clients_organization_id_fkey"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("oauth_clients_pkey")),
        sa.UniqueConstraint("client_id", name=op.f("oauth_clients_client_id_key")),
        sa.UniqueConstraint("secret_hash", name=op.f("oauth_clients_secret_hash_key")),
    )
    op.create_index(
        "oauth_clients_organization_created_idx",
        "oauth_clients",
        ["organization_id", "created_at"],
        unique=False,
    )
    op.add_column("drafts", sa.Column("created_by_client_id", sa.Uuid(), nullable=True))
    op.create_foreign_key(
        op.f("drafts_created_by_client_id_fkey"),
        "drafts",
        "oauth_clients",
        ["created_by_client_id"],
        ["id"],
        ondelete="SET NULL",
    )

    op.execute(f"GRANT SELECT ({_CLIENT_COLUMNS}) ON oauth_clients TO plume_app")
    op.execute("GRANT INSERT ON oauth_clients TO plume_app")
    op.execute("ALTER TABLE oauth_clients ENABLE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY oauth_clients_read ON oauth_clients FOR SELECT TO plume_app"
        f" USING {_IN_SCOPE}"
    )
    op.execute(
        f"CREATE POLICY oauth_clients_create ON oauth_clients FOR INSERT TO plume_app"
        f" WITH CHECK {_IN_SCOPE}"
    )
    op.execute(
        f"CREATE POLICY oauth_clients_owner ON oauth_clients TO CURRENT_USER"
        f" USING {_IN_SCOPE} WITH CHECK {_IN_SCOPE}"
    )
    op.execute("GRANT SELECT, UPDATE ON oauth_clients TO plume_definer")
    op.execute(
        f"CREATE POLICY oauth_clients_definer ON oauth_clients TO plume_definer"
        f" USING {_DEFINER} WITH CHECK {_DEFINER}"
    )
    op.execute("ALTER TABLE oauth_clients FORCE ROW LEVEL SECURITY")

    op.execute(OAUTH_CLIENT_LOOKUP)
    op.execute("ALTER FUNCTION oauth_client_lookup(text, text[], text) OWNER TO plume_definer")
    op.execute(OAUTH_CLIENT_REVOKE)
    for signature in ("oauth_client_lookup(text, text[], text)", "oauth_client_revoke(uuid)"):
        op.execute(f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC")
        op.execute(f"GRANT EXECUTE ON FUNCTION {signature} TO plume_app")


def downgrade() -> None:
    op.execute("DROP FUNCTION oauth_client_revoke(uuid)")
    op.execute("DROP FUNCTION oauth_client_lookup(text, text[], text)")
    op.drop_constraint(op.f("drafts_created_by_client_id_fkey"), "drafts", type_="foreignkey")
    op.drop_column("drafts", "created_by_client_id")
    op.drop_index("oauth_clients_organization_created_idx", table_name="oauth_clients")
    op.drop_table("oauth_clients")
