"""`quota_reserve_or_refuse`: the quota reservation whose refusal is an error, so that a
request's first transaction, sent without a session, can end with its COMMIT in the same
pipeline as the reservation (docs/performance.md, ninth cut): the ledger's row locks are held
for the statement and the commit only, never while Plume reads the answer.

The function's source is services/plume/quotas/sql/quota_reserve_or_refuse.sql; this revision
embeds a frozen copy of it. Invoker's rights: it calls `quota_reserve`, which the application
role may call.

Revision ID: 9d3c51e0a7b4
Revises: 72058f730b04
Create Date: 2026-12-09 09:00:00.000000+00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "9d3c51e0a7b4"
down_revision: str | None = "72058f730b04"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SIGNATURE = "quota_reserve_or_refuse(uuid, uuid, timestamptz, numeric, numeric, timestamptz)"

QUOTA_RESERVE_OR_REFUSE = r"""
-- quota_reserve_or_refuse: quota_reserve, whose refusal is an error. A request's first
-- transaction, sent without a session, ends in one pipeline: the reservation (with its
-- tenant context), then COMMIT (plume.quotas.repository.reserve_in_context_on). Plume cannot
-- read the answer before the commit is sent: a refusal must abort the transaction itself, so
-- that the COMMIT after it commits nothing and the holds it took are rolled back. The error
-- (SQLSTATE PQ429) carries the refusing quota's row in its DETAIL, as JSON, for the refusal's
-- message. An accepted reservation answers its row as quota_reserve does; no row when no
-- quota applies. The ledger's row locks are thus held for the statement and the commit only,
-- never while Plume reads the answer.
--
-- The source of the function: tests/runtime/test_sql_sources.py checks that the migrated
-- database's function is this text. A change takes a new migration holding a frozen copy.
CREATE OR REPLACE FUNCTION quota_reserve_or_refuse(
    p_id uuid, p_organization uuid, p_now timestamptz, p_tokens numeric, p_cost numeric,
    p_expires_at timestamptz)
RETURNS TABLE (organization_id uuid, metric text, period text, quota numeric,
               window_start timestamptz, amount numeric, used numeric, reserved numeric,
               accepted boolean)
LANGUAGE plpgsql
-- The caller's rights: quota_reserve, which it calls, is what may write the ledger, and
-- checks the transaction's scope.
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    answer record;
BEGIN
    SELECT r.* INTO answer
    FROM public.quota_reserve(p_id, p_organization, p_now, p_tokens, p_cost, p_expires_at) AS r;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF NOT answer.accepted THEN
        RAISE EXCEPTION 'quota refused'
            USING ERRCODE = 'PQ429', DETAIL = row_to_json(answer)::text;
    END IF;
    organization_id := answer.organization_id;
    metric := answer.metric;
    period := answer.period;
    quota := answer.quota;
    window_start := answer.window_start;
    amount := answer.amount;
    used := answer.used;
    reserved := answer.reserved;
    accepted := answer.accepted;
    RETURN NEXT;
END
$$;
"""


def upgrade() -> None:
    op.execute(QUOTA_RESERVE_OR_REFUSE)
    op.execute(f"REVOKE ALL ON FUNCTION {SIGNATURE} FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION {SIGNATURE} TO plume_app")


def downgrade() -> None:
    op.execute(f"DROP FUNCTION {SIGNATURE}")
