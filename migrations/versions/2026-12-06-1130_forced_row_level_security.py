"""Row-level security forced on every tenant table, and per-command privileges and policies:
the application role reads, and writes only what the application writes itself.

Review findings M-1, M-2, L-1 and L-9 (the database's side):

* FORCE ROW LEVEL SECURITY on the ten tenant tables: their owner (the migrating role) is
  subject to the policies too; only superusers bypass them. The owner's policy (`*_owner`,
  for the role running this migration) lets it see and write the rows of the scope it
  publishes in the transaction's settings (the system's scope: every organisation), as the
  application role's do: a statement of the owner's that forgot to enter a scope sees
  nothing. The SECURITY DEFINER functions it owns act within the caller's scope.
* `plume_definer`, a role nobody logs in as (NOLOGIN, not a superuser, no BYPASSRLS), owns
  the three functions that must read past the caller's scope: `api_key_lookup` (before
  there is one), `quota_reserve` and `quota_settle` (the organisation's ancestors and their
  ledger rows). Its policies (`*_definer`) let it read and write every row of the four
  tables they use, only while it is the current user: in the body of those functions. The
  migrating role is granted it (to create and replace its functions), and does not pass
  its policies through membership, since they check the current user.
* organizations: SELECT within the scope; INSERT only with the system's scope; UPDATE of
  `updated_at` only (a row lock, SELECT … FOR UPDATE, needs one updatable column): name,
  status, policy and parent change through `organization_update`, the operator's.
* api_keys: SELECT of every column but `secret_hash` within the scope (a hash is as good as
  the key to whoever could move it onto another key); INSERT within the scope, and of an
  operator_admin key only with the system's scope; no UPDATE: keys are looked up, touched
  and re-hashed by `api_key_lookup`, revoked by `api_key_revoke`, and a role, an expiry or a
  revocation never changes otherwise.
* audit_entries and audit_heads: SELECT within the scope, nothing else: `audit_append` is
  the only way to write a chain.
* quota_ledger: its use can no longer go negative (CHECK), as its holds could not.
* The schema: no CREATE for PUBLIC (PostgreSQL 15's default, not that of a cluster upgraded
  from an older version), so that nobody but its owner can put an object in `public`. The
  downgrade leaves this as it is.
* alembic_version: readable by the application role, for the readiness probe of a service
  that logs in as a role owning nothing.

Revision ID: 23e4cbbcde0b
Revises: 4c4f207683b5
Create Date: 2026-12-06 11:30:00.000000+00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "23e4cbbcde0b"
down_revision: str | None = "4c4f207683b5"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The transaction's scope, as in every earlier revision: a row is visible when its
# organisation is in the settings the application publishes for each transaction
# (plume.db.enter_tenant_context); with neither setting, nothing matches.
_ALL = "(current_setting('plume.all_organizations', true) = 'on')"
_IN_SCOPE = """(current_setting('plume.all_organizations', true) = 'on'
    OR organization_id = ANY (string_to_array(
        nullif(current_setting('plume.organizations', true), ''), ',')::uuid[]))"""
_ID_IN_SCOPE = """(current_setting('plume.all_organizations', true) = 'on'
    OR id = ANY (string_to_array(
        nullif(current_setting('plume.organizations', true), ''), ',')::uuid[]))"""
# In the body of a function plume_definer owns (not in a session of one of its members).
_DEFINER = "(current_user = 'plume_definer')"
# What plume_definer's functions read and write, and may.
_DEFINER_GRANTS = {
    "organizations": "SELECT",
    "api_keys": "SELECT, UPDATE",
    "quota_ledger": "SELECT, UPDATE",
    "quota_reservations": "SELECT, INSERT, DELETE",
}
_DEFINER_FUNCTIONS = [
    "api_key_lookup(text[], text)",
    "quota_reserve(uuid, uuid, timestamptz, numeric, numeric, timestamptz)",
    "quota_settle(uuid, numeric, numeric, numeric, uuid, timestamptz)",
]

TENANT_TABLES = [
    "organizations",
    "api_keys",
    "drafts",
    "idempotency_keys",
    "quotas",
    "quota_ledger",
    "quota_reservations",
    "usage_records",
    "audit_entries",
    "audit_heads",
]

# Every column of api_keys but secret_hash.
_KEY_COLUMNS = (
    "id, organization_id, name, role, prefix, secret_version, expires_at, revoked_at,"
    " last_used_at, created_by_key_id, created_at"
)

_USED_NOT_NEGATIVE = (
    "minute_requests >= 0 AND minute_tokens >= 0 AND minute_cost_eur >= 0"
    " AND day_requests >= 0 AND day_tokens >= 0 AND day_cost_eur >= 0"
    " AND month_requests >= 0 AND month_tokens >= 0 AND month_cost_eur >= 0"
)


def _owner_policy(table: str) -> str:
    scope = _ID_IN_SCOPE if table == "organizations" else _IN_SCOPE
    return (
        f"CREATE POLICY {table}_owner ON {table} TO CURRENT_USER USING {scope} WITH CHECK {scope}"
    )


def upgrade() -> None:
    op.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
    op.execute("GRANT SELECT ON alembic_version TO plume_app")

    # Roles are cluster-wide: another database of the cluster may have created it already.
    op.execute("""
        DO $$ BEGIN
            CREATE ROLE plume_definer NOLOGIN NOSUPERUSER NOBYPASSRLS;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
        END $$
    """)
    op.execute("GRANT plume_definer TO CURRENT_USER")
    # A function's owner must be able to create in its schema (it never does: the bodies
    # are fixed, their search path pinned).
    op.execute("GRANT USAGE, CREATE ON SCHEMA public TO plume_definer")
    for table, privileges in _DEFINER_GRANTS.items():
        op.execute(f"GRANT {privileges} ON {table} TO plume_definer")
        op.execute(
            f"CREATE POLICY {table}_definer ON {table} TO plume_definer"
            f" USING {_DEFINER} WITH CHECK {_DEFINER}"
        )
    for signature in _DEFINER_FUNCTIONS:
        op.execute(f"ALTER FUNCTION {signature} OWNER TO plume_definer")

    op.execute("REVOKE UPDATE ON organizations FROM plume_app")
    op.execute("GRANT UPDATE (updated_at) ON organizations TO plume_app")
    op.execute("DROP POLICY organizations_tenant_scope ON organizations")
    op.execute(
        f"CREATE POLICY organizations_read ON organizations FOR SELECT TO plume_app"
        f" USING {_ID_IN_SCOPE}"
    )
    op.execute(
        f"CREATE POLICY organizations_create ON organizations FOR INSERT TO plume_app"
        f" WITH CHECK {_ALL}"
    )
    op.execute(
        "CREATE POLICY organizations_lock ON organizations FOR UPDATE TO plume_app"
        f" USING {_ID_IN_SCOPE} WITH CHECK {_ID_IN_SCOPE}"
    )

    op.execute("REVOKE SELECT, UPDATE ON api_keys FROM plume_app")
    op.execute(f"GRANT SELECT ({_KEY_COLUMNS}) ON api_keys TO plume_app")
    op.execute("DROP POLICY api_keys_tenant_scope ON api_keys")
    op.execute(f"CREATE POLICY api_keys_read ON api_keys FOR SELECT TO plume_app USING {_IN_SCOPE}")
    op.execute(
        "CREATE POLICY api_keys_mint ON api_keys FOR INSERT TO plume_app"
        f" WITH CHECK ({_IN_SCOPE} AND (role <> 'operator_admin' OR {_ALL}))"
    )

    op.execute("REVOKE INSERT ON audit_entries FROM plume_app")
    op.execute("REVOKE INSERT, UPDATE ON audit_heads FROM plume_app")
    for table in ("audit_entries", "audit_heads"):
        op.execute(f"DROP POLICY {table}_tenant_scope ON {table}")
        op.execute(
            f"CREATE POLICY {table}_read ON {table} FOR SELECT TO plume_app USING {_IN_SCOPE}"
        )

    op.execute(
        "ALTER TABLE quota_ledger ADD CONSTRAINT quota_ledger_used_not_negative_check"
        f" CHECK ({_USED_NOT_NEGATIVE})"
    )

    for table in TENANT_TABLES:
        op.execute(_owner_policy(table))
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")


def downgrade() -> None:
    for table in TENANT_TABLES:
        op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
        op.execute(f"DROP POLICY {table}_owner ON {table}")

    # plume_definer stays (roles are cluster-wide), owning nothing here.
    for signature in _DEFINER_FUNCTIONS:
        op.execute(f"ALTER FUNCTION {signature} OWNER TO CURRENT_USER")
    for table, privileges in _DEFINER_GRANTS.items():
        op.execute(f"DROP POLICY {table}_definer ON {table}")
        op.execute(f"REVOKE {privileges} ON {table} FROM plume_definer")
    op.execute("REVOKE USAGE, CREATE ON SCHEMA public FROM plume_definer")

    op.execute("ALTER TABLE quota_ledger DROP CONSTRAINT quota_ledger_used_not_negative_check")

    for table in ("audit_entries", "audit_heads"):
        op.execute(f"DROP POLICY {table}_read ON {table}")
        op.execute(
            f"CREATE POLICY {table}_tenant_scope ON {table} TO plume_app"
            f" USING {_IN_SCOPE} WITH CHECK {_IN_SCOPE}"
        )
    op.execute("GRANT INSERT ON audit_entries TO plume_app")
    op.execute("GRANT INSERT, UPDATE ON audit_heads TO plume_app")

    op.execute("DROP POLICY api_keys_mint ON api_keys")
    op.execute("DROP POLICY api_keys_read ON api_keys")
    op.execute(
        "CREATE POLICY api_keys_tenant_scope ON api_keys TO plume_app"
        f" USING {_IN_SCOPE} WITH CHECK {_IN_SCOPE}"
    )
    op.execute(f"REVOKE SELECT ({_KEY_COLUMNS}) ON api_keys FROM plume_app")  # noqa: S608
    op.execute("GRANT SELECT, UPDATE ON api_keys TO plume_app")

    op.execute("DROP POLICY organizations_lock ON organizations")
    op.execute("DROP POLICY organizations_create ON organizations")
    op.execute("DROP POLICY organizations_read ON organizations")
    op.execute(
        "CREATE POLICY organizations_tenant_scope ON organizations TO plume_app"
        f" USING {_ID_IN_SCOPE} WITH CHECK {_ID_IN_SCOPE}"
    )
    op.execute("REVOKE UPDATE (updated_at) ON organizations FROM plume_app")
    op.execute("GRANT UPDATE ON organizations TO plume_app")

    op.execute("REVOKE SELECT ON alembic_version FROM plume_app")
