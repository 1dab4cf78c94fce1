"""The audit chain's append as a SQL function, `audit_append`: one source for the chaining
rule, called by every append (an action's entry, and the settlement of a provider call,
which writes its usage record, moves the quota ledger and appends its entry in one
statement).

The function's source is services/plume/audit/sql/audit_append.sql; this revision embeds a
frozen copy of it, as a migration must (a later change to the source needs a later
revision). Invoker's rights: the application role appends under row-level security.

Revision ID: 4e7a1c9d2b60
Revises: 41f0d2dc9d40
Create Date: 2026-12-06 10:00:00.000000+00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "4e7a1c9d2b60"
down_revision: str | None = "41f0d2dc9d40"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SIGNATURE = "audit_append(uuid, timestamptz, text, uuid, text, text)"

AUDIT_APPEND = r"""
CREATE OR REPLACE FUNCTION audit_append(
    p_organization uuid, p_occurred_at timestamptz, p_action text, p_actor_key_id uuid,
    p_actor_role text, p_body text)
RETURNS TABLE (entry_seq bigint, entry_hash text)
LANGUAGE plpgsql SET search_path = pg_catalog, public SET plan_cache_mode = force_generic_plan
AS $$
BEGIN
    -- The chain's head row is upserted first, which locks it: appends to one chain are
    -- serialised, and each computes its hash from the head as the previous append left it.
    WITH head AS (
        INSERT INTO public.audit_heads AS h (organization_id, seq, prev_hash, hash)
        VALUES (p_organization, 1, repeat('0', 64),
                encode(sha256(convert_to(
                    '1' || E'\n' || repeat('0', 64) || E'\n' || p_body, 'UTF8')), 'hex'))
        ON CONFLICT (organization_id) DO UPDATE
            SET seq = h.seq + 1,
                prev_hash = h.hash,
                hash = encode(sha256(convert_to(
                    (h.seq + 1)::text || E'\n' || h.hash || E'\n' || p_body, 'UTF8')), 'hex')
        RETURNING h.seq, h.prev_hash, h.hash
    )
    -- Then the entry, from the head's new values.
    INSERT INTO public.audit_entries AS e
        (organization_id, seq, occurred_at, action, actor_key_id, actor_role, body,
         prev_hash, hash)
    SELECT p_organization, head.seq, p_occurred_at, p_action, p_actor_key_id, p_actor_role,
           p_body, head.prev_hash, head.hash
    FROM head
    RETURNING e.seq, e.hash INTO entry_seq, entry_hash;
    RETURN NEXT;
END
$$
"""


def upgrade() -> None:
    op.execute(AUDIT_APPEND)
    op.execute(f"REVOKE ALL ON FUNCTION {SIGNATURE} FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION {SIGNATURE} TO plume_app")


def downgrade() -> None:
    op.execute(f"DROP FUNCTION {SIGNATURE}")
