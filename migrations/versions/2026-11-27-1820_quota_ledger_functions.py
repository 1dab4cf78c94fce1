"""One ledger row per organisation, moved only by SECURITY DEFINER functions.

Every provider-backed request reserves against, then settles, each level of its chain
that has quotas. With a counter row per (organisation, metric, period, window), that was
six row writes each way for a commune and its EPCI with three quotas each; a row per
organisation (`quota_ledger`: each period's current window with its use per metric, and
what requests in flight hold per metric) makes it one per level. Windows roll forward in
the row itself, and a request is charged to the windows in which it ends.
`quota_counters` remains, as a view giving readers one row per quota.

Reserve, settle, extend and sweep are functions owned by the migrating role. The
application role keeps SELECT and loses every write: a commune's transaction can no
longer touch its EPCI's ledger except by reserving or settling a request of its own,
whose chain the function reads from the organisation tree itself. Each function checks
that the organisation it acts for is in the transaction's scope (what the row-level
policies check). Quotas themselves may be written only for an organisation whose parent
is in scope (an EPCI's communes), or by the operator.

The ledger and the reservations have no foreign key (checked on every request's hot
path; organisations are never deleted, every other table restricts it) and the
reservations no expiry index (the sweep reads a table of requests in flight).
Reservations in flight during the upgrade are dropped: a request whose reservation
vanished is charged all the same when it ends.

Revision ID: 7d2f0c4b9e11
Revises: 5ffdfdee1450
Create Date: 2026-11-27 18:20:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "7d2f0c4b9e11"
down_revision: str | None = "5ffdfdee1450"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

AMOUNT = sa.Numeric(precision=20, scale=6)

# Row-level security: a row is visible when its organisation is in the transaction's scope,
# which the application publishes in transaction-local settings for each request
# (plume.db.enter_tenant_context). With neither setting (a forgotten scope), nothing matches.
_IN_SCOPE = """(current_setting('plume.all_organizations', true) = 'on'
    OR organization_id = ANY (string_to_array(
        nullif(current_setting('plume.organizations', true), ''), ',')::uuid[]))"""
# ... or the caller's ancestors (its EPCI, the operator), whose quotas count too.
_IN_SCOPE_OR_ANCESTOR = """((current_setting('plume.all_organizations', true) = 'on'
    OR organization_id = ANY (string_to_array(
        nullif(current_setting('plume.organizations', true), ''), ',')::uuid[]))
    OR (organization_id = ANY (string_to_array(
        nullif(current_setting('plume.ancestors', true), ''), ',')::uuid[])))"""
# An organisation whose parent is in scope: an EPCI admin's communes.
_PARENT_IN_SCOPE = """(organization_id IN (SELECT o.id FROM organizations AS o
    WHERE (current_setting('plume.all_organizations', true) = 'on'
        OR o.parent_id = ANY (string_to_array(
            nullif(current_setting('plume.organizations', true), ''), ',')::uuid[]))))"""

# The functions' bodies (between the $$) are, byte for byte, the text this revision has
# always given PostgreSQL, which keeps it as it was written (pg_get_functiondef, pg_dump):
# it was generated, and some of its lines are long. Inside these strings, a backslash at
# the end of a line joins it to the next one (Python drops both), so the source wraps where
# the text does not.
#
# A generic plan, planned once per connection: re-planning these statements on each call
# (what PostgreSQL chooses by itself here) costs more than running them. Table names are
# schema-qualified and the search path pinned, as befits SECURITY DEFINER.

# Reserve against each level of the chain that has quotas: one ledger row per level, taken
# only if none of the level's quotas would go over. A level that refuses keeps its row
# unchanged and its quotas come back with used and reserved NULL: the caller then rolls
# the whole transaction back (all or nothing). Rows are locked in organisation order
# everywhere, so reservations and settlements never deadlock.
_RESERVE = """
CREATE FUNCTION quota_reserve(
    p_id uuid, p_organization uuid, p_windows timestamptz[], p_tokens numeric,
    p_cost numeric, p_expires_at timestamptz)
RETURNS TABLE (organization_id uuid, metric text, period text, quota numeric,
               window_start timestamptz, amount numeric, used numeric, reserved numeric)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    p_requests CONSTANT numeric := 1;
BEGIN
    IF NOT (current_setting('plume.all_organizations', true) = 'on'\
 OR p_organization = ANY (string_to_array(nullif(current_setting('plume.organizations', true), ''),\
 ',')::uuid[])) THEN
        RAISE EXCEPTION 'organisation % is outside this transaction''s scope', p_organization
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN QUERY
    WITH RECURSIVE chain AS (
        SELECT o.id, o.parent_id FROM public.organizations AS o WHERE o.id = p_organization
        UNION ALL
        SELECT o.id, o.parent_id FROM public.organizations AS o JOIN chain ON o.id = chain.parent_id
    ),
    wanted AS MATERIALIZED (
        SELECT q.organization_id, q.metric, q.period, q."limit", (CASE q.metric\
 WHEN 'requests' THEN p_requests\
 WHEN 'tokens' THEN p_tokens ELSE p_cost END) AS amount
        FROM public.quotas AS q
        WHERE q.organization_id IN (SELECT chain.id FROM chain)
    ),
    taken AS (
        INSERT INTO public.quota_ledger AS l
            (organization_id, minute_start, day_start, month_start,
             reserved_requests, reserved_tokens, reserved_cost_eur)
        SELECT DISTINCT w.organization_id, p_windows[1], p_windows[2], p_windows[3],
               p_requests, p_tokens, p_cost
        FROM wanted AS w
        WHERE NOT EXISTS (SELECT FROM wanted AS q
                          WHERE q.organization_id = w.organization_id AND q.amount > q."limit")
        ORDER BY w.organization_id
        ON CONFLICT ON CONSTRAINT quota_ledger_pkey DO UPDATE SET
            minute_start = greatest(l.minute_start, p_windows[1]),
            day_start = greatest(l.day_start, p_windows[2]),
            month_start = greatest(l.month_start, p_windows[3]),
            minute_requests = CASE WHEN p_windows[1] IS NULL OR l.minute_start >= p_windows[1]\
 THEN l.minute_requests ELSE 0 END + 0,
            minute_tokens = CASE WHEN p_windows[1] IS NULL OR l.minute_start >= p_windows[1]\
 THEN l.minute_tokens ELSE 0 END + 0,
            minute_cost_eur = CASE WHEN p_windows[1] IS NULL OR l.minute_start >= p_windows[1]\
 THEN l.minute_cost_eur ELSE 0 END + 0,
            day_requests = CASE WHEN p_windows[2] IS NULL OR l.day_start >= p_windows[2]\
 THEN l.day_requests ELSE 0 END + 0,
            day_tokens = CASE WHEN p_windows[2] IS NULL OR l.day_start >= p_windows[2]\
 THEN l.day_tokens ELSE 0 END + 0,
            day_cost_eur = CASE WHEN p_windows[2] IS NULL OR l.day_start >= p_windows[2]\
 THEN l.day_cost_eur ELSE 0 END + 0,
            month_requests = CASE WHEN p_windows[3] IS NULL OR l.month_start >= p_windows[3]\
 THEN l.month_requests ELSE 0 END + 0,
            month_tokens = CASE WHEN p_windows[3] IS NULL OR l.month_start >= p_windows[3]\
 THEN l.month_tokens ELSE 0 END + 0,
            month_cost_eur = CASE WHEN p_windows[3] IS NULL OR l.month_start >= p_windows[3]\
 THEN l.month_cost_eur ELSE 0 END + 0,
            reserved_requests = l.reserved_requests + p_requests,
            reserved_tokens = l.reserved_tokens + p_tokens,
            reserved_cost_eur = l.reserved_cost_eur + p_cost
        WHERE NOT EXISTS (
            SELECT FROM wanted AS q
            WHERE q.organization_id = l.organization_id
              AND (CASE q.period || '.' || q.metric\
 WHEN 'minute.requests' THEN CASE WHEN p_windows[1] IS NULL OR l.minute_start >= p_windows[1]\
 THEN l.minute_requests ELSE 0 END\
 WHEN 'minute.tokens' THEN CASE WHEN p_windows[1] IS NULL OR l.minute_start >= p_windows[1]\
 THEN l.minute_tokens ELSE 0 END\
 WHEN 'minute.cost_eur' THEN CASE WHEN p_windows[1] IS NULL OR l.minute_start >= p_windows[1]\
 THEN l.minute_cost_eur ELSE 0 END\
 WHEN 'day.requests' THEN CASE WHEN p_windows[2] IS NULL OR l.day_start >= p_windows[2]\
 THEN l.day_requests ELSE 0 END\
 WHEN 'day.tokens' THEN CASE WHEN p_windows[2] IS NULL OR l.day_start >= p_windows[2]\
 THEN l.day_tokens ELSE 0 END\
 WHEN 'day.cost_eur' THEN CASE WHEN p_windows[2] IS NULL OR l.day_start >= p_windows[2]\
 THEN l.day_cost_eur ELSE 0 END\
 WHEN 'month.requests' THEN CASE WHEN p_windows[3] IS NULL OR l.month_start >= p_windows[3]\
 THEN l.month_requests ELSE 0 END\
 WHEN 'month.tokens' THEN CASE WHEN p_windows[3] IS NULL OR l.month_start >= p_windows[3]\
 THEN l.month_tokens ELSE 0 END\
 WHEN 'month.cost_eur' THEN CASE WHEN p_windows[3] IS NULL OR l.month_start >= p_windows[3]\
 THEN l.month_cost_eur ELSE 0 END END) + (CASE q.metric\
 WHEN 'requests' THEN l.reserved_requests\
 WHEN 'tokens' THEN l.reserved_tokens ELSE l.reserved_cost_eur END) + q.amount > q."limit")
        RETURNING l.*
    ),
    held AS (
        INSERT INTO public.quota_reservations
            (id, organization_id, tokens, cost_eur, holds, expires_at)
        SELECT p_id, p_organization, p_tokens, p_cost,
               array_agg(t.organization_id ORDER BY t.organization_id), p_expires_at
        FROM taken AS t
        HAVING count(*) > 0
    )
    SELECT w.organization_id, w.metric::text, w.period::text, w."limit", p_windows[CASE w.period\
 WHEN 'minute' THEN 1\
 WHEN 'day' THEN 2 ELSE 3 END],
           w.amount,
           CASE WHEN t.organization_id IS NOT NULL THEN (CASE w.period || '.' || w.metric\
 WHEN 'minute.requests' THEN CASE WHEN p_windows[1] IS NULL OR t.minute_start >= p_windows[1]\
 THEN t.minute_requests ELSE 0 END\
 WHEN 'minute.tokens' THEN CASE WHEN p_windows[1] IS NULL OR t.minute_start >= p_windows[1]\
 THEN t.minute_tokens ELSE 0 END\
 WHEN 'minute.cost_eur' THEN CASE WHEN p_windows[1] IS NULL OR t.minute_start >= p_windows[1]\
 THEN t.minute_cost_eur ELSE 0 END\
 WHEN 'day.requests' THEN CASE WHEN p_windows[2] IS NULL OR t.day_start >= p_windows[2]\
 THEN t.day_requests ELSE 0 END\
 WHEN 'day.tokens' THEN CASE WHEN p_windows[2] IS NULL OR t.day_start >= p_windows[2]\
 THEN t.day_tokens ELSE 0 END\
 WHEN 'day.cost_eur' THEN CASE WHEN p_windows[2] IS NULL OR t.day_start >= p_windows[2]\
 THEN t.day_cost_eur ELSE 0 END\
 WHEN 'month.requests' THEN CASE WHEN p_windows[3] IS NULL OR t.month_start >= p_windows[3]\
 THEN t.month_requests ELSE 0 END\
 WHEN 'month.tokens' THEN CASE WHEN p_windows[3] IS NULL OR t.month_start >= p_windows[3]\
 THEN t.month_tokens ELSE 0 END\
 WHEN 'month.cost_eur' THEN CASE WHEN p_windows[3] IS NULL OR t.month_start >= p_windows[3]\
 THEN t.month_cost_eur ELSE 0 END END) END,
           CASE WHEN t.organization_id IS NOT NULL THEN (CASE w.metric\
 WHEN 'requests' THEN t.reserved_requests\
 WHEN 'tokens' THEN t.reserved_tokens ELSE t.reserved_cost_eur END) END
    FROM wanted AS w
    LEFT JOIN taken AS t ON t.organization_id = w.organization_id;
END
$$"""

# Replace what reservations held by what was used (zero releases), in the current windows.
# A reservation already settled or swept is gone, so nothing is settled twice; a charged
# request whose reservation is gone (swept after its TTL, or lost with an asynchronous
# commit) is charged anyway, unconditionally: it has happened.
_SETTLE = """
CREATE FUNCTION quota_settle(
    p_ids uuid[], p_requests numeric, p_tokens numeric, p_cost numeric,
    p_organization uuid, p_windows timestamptz[])
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    released integer;
BEGIN
    WITH gone AS (
        DELETE FROM public.quota_reservations AS r
        WHERE r.id = ANY (p_ids) AND (current_setting('plume.all_organizations', true) = 'on'\
 OR r.organization_id = ANY (string_to_array(nullif(current_setting('plume.organizations', true),\
 ''), ',')::uuid[]))
        RETURNING r.tokens, r.cost_eur, r.holds
    ),
    held AS (
        SELECT h.level, count(*) AS requests, sum(g.tokens) AS tokens,
               sum(g.cost_eur) AS cost_eur
        FROM gone AS g, unnest(g.holds) AS h(level)
        GROUP BY h.level
    ),
    locked AS MATERIALIZED (
        SELECT l.organization_id FROM public.quota_ledger AS l
        WHERE l.organization_id IN (SELECT held.level FROM held)
        ORDER BY l.organization_id
        FOR UPDATE OF l
    ),
    moved AS (
        UPDATE public.quota_ledger AS l SET
            minute_start = greatest(l.minute_start, p_windows[1]),
            day_start = greatest(l.day_start, p_windows[2]),
            month_start = greatest(l.month_start, p_windows[3]),
            minute_requests = CASE WHEN p_windows[1] IS NULL OR l.minute_start >= p_windows[1]\
 THEN l.minute_requests ELSE 0 END + p_requests,
            minute_tokens = CASE WHEN p_windows[1] IS NULL OR l.minute_start >= p_windows[1]\
 THEN l.minute_tokens ELSE 0 END + p_tokens,
            minute_cost_eur = CASE WHEN p_windows[1] IS NULL OR l.minute_start >= p_windows[1]\
 THEN l.minute_cost_eur ELSE 0 END + p_cost,
            day_requests = CASE WHEN p_windows[2] IS NULL OR l.day_start >= p_windows[2]\
 THEN l.day_requests ELSE 0 END + p_requests,
            day_tokens = CASE WHEN p_windows[2] IS NULL OR l.day_start >= p_windows[2]\
 THEN l.day_tokens ELSE 0 END + p_tokens,
            day_cost_eur = CASE WHEN p_windows[2] IS NULL OR l.day_start >= p_windows[2]\
 THEN l.day_cost_eur ELSE 0 END + p_cost,
            month_requests = CASE WHEN p_windows[3] IS NULL OR l.month_start >= p_windows[3]\
 THEN l.month_requests ELSE 0 END + p_requests,
            month_tokens = CASE WHEN p_windows[3] IS NULL OR l.month_start >= p_windows[3]\
 THEN l.month_tokens ELSE 0 END + p_tokens,
            month_cost_eur = CASE WHEN p_windows[3] IS NULL OR l.month_start >= p_windows[3]\
 THEN l.month_cost_eur ELSE 0 END + p_cost,
            reserved_requests = l.reserved_requests - held.requests,
            reserved_tokens = l.reserved_tokens - held.tokens,
            reserved_cost_eur = l.reserved_cost_eur - held.cost_eur
        FROM held JOIN locked ON locked.organization_id = held.level
        WHERE l.organization_id = held.level
    )
    SELECT count(*) INTO released FROM gone;
    IF released > 0 OR p_requests = 0 THEN
        RETURN released > 0;
    END IF;
    IF NOT (current_setting('plume.all_organizations', true) = 'on'\
 OR p_organization = ANY (string_to_array(nullif(current_setting('plume.organizations', true), ''),\
 ',')::uuid[])) THEN
        RAISE EXCEPTION 'organisation % is outside this transaction''s scope', p_organization
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    WITH RECURSIVE chain AS (
        SELECT o.id, o.parent_id FROM public.organizations AS o WHERE o.id = p_organization
        UNION ALL
        SELECT o.id, o.parent_id FROM public.organizations AS o JOIN chain ON o.id = chain.parent_id
    )
    INSERT INTO public.quota_ledger AS l
        (organization_id, minute_start, day_start, month_start, minute_requests, minute_tokens,\
 minute_cost_eur, day_requests, day_tokens, day_cost_eur, month_requests, month_tokens,\
 month_cost_eur)
    SELECT DISTINCT q.organization_id, p_windows[1], p_windows[2], p_windows[3],
           p_requests, p_tokens, p_cost, p_requests, p_tokens, p_cost, p_requests, p_tokens, p_cost
    FROM public.quotas AS q
    WHERE q.organization_id IN (SELECT chain.id FROM chain)
    ORDER BY q.organization_id
    ON CONFLICT ON CONSTRAINT quota_ledger_pkey DO UPDATE SET
            minute_start = greatest(l.minute_start, p_windows[1]),
            day_start = greatest(l.day_start, p_windows[2]),
            month_start = greatest(l.month_start, p_windows[3]),
            minute_requests = CASE WHEN p_windows[1] IS NULL OR l.minute_start >= p_windows[1]\
 THEN l.minute_requests ELSE 0 END + p_requests,
            minute_tokens = CASE WHEN p_windows[1] IS NULL OR l.minute_start >= p_windows[1]\
 THEN l.minute_tokens ELSE 0 END + p_tokens,
            minute_cost_eur = CASE WHEN p_windows[1] IS NULL OR l.minute_start >= p_windows[1]\
 THEN l.minute_cost_eur ELSE 0 END + p_cost,
            day_requests = CASE WHEN p_windows[2] IS NULL OR l.day_start >= p_windows[2]\
 THEN l.day_requests ELSE 0 END + p_requests,
            day_tokens = CASE WHEN p_windows[2] IS NULL OR l.day_start >= p_windows[2]\
 THEN l.day_tokens ELSE 0 END + p_tokens,
            day_cost_eur = CASE WHEN p_windows[2] IS NULL OR l.day_start >= p_windows[2]\
 THEN l.day_cost_eur ELSE 0 END + p_cost,
            month_requests = CASE WHEN p_windows[3] IS NULL OR l.month_start >= p_windows[3]\
 THEN l.month_requests ELSE 0 END + p_requests,
            month_tokens = CASE WHEN p_windows[3] IS NULL OR l.month_start >= p_windows[3]\
 THEN l.month_tokens ELSE 0 END + p_tokens,
            month_cost_eur = CASE WHEN p_windows[3] IS NULL OR l.month_start >= p_windows[3]\
 THEN l.month_cost_eur ELSE 0 END + p_cost;
    RETURN false;
END
$$"""

# A synthèse accepted as a job keeps its reservation until the job ends.
_EXTEND = """
CREATE FUNCTION quota_extend(p_id uuid, p_expires_at timestamptz) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public SET plan_cache_mode = force_generic_plan
AS $$
BEGIN
    UPDATE public.quota_reservations AS r SET expires_at = p_expires_at
    WHERE r.id = p_id AND (current_setting('plume.all_organizations', true) = 'on'\
 OR r.organization_id = ANY (string_to_array(nullif(current_setting('plume.organizations', true),\
 ''), ',')::uuid[]));
END
$$"""

# Reservations whose request died with its process, released; returns how many. Only the
# system's sweep, whose scope is every organisation, may do it.
_RELEASE_EXPIRED = """
CREATE FUNCTION quota_release_expired(p_now timestamptz, p_batch integer) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    expired uuid[];
BEGIN
    IF current_setting('plume.all_organizations', true) IS DISTINCT FROM 'on' THEN
        RAISE EXCEPTION 'only the system sweeps reservations'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    SELECT coalesce(array_agg(due.id), '{}') INTO expired FROM (
        SELECT r.id FROM public.quota_reservations AS r
        WHERE r.expires_at < p_now
        ORDER BY r.expires_at
        LIMIT p_batch
        FOR UPDATE SKIP LOCKED
    ) AS due;
    IF cardinality(expired) > 0 THEN
        PERFORM public.quota_settle(expired, 0, 0, 0, NULL, NULL);
    END IF;
    RETURN cardinality(expired);
END
$$"""

_FUNCTIONS = {
    "quota_reserve(uuid, uuid, timestamptz[], numeric, numeric, timestamptz)": _RESERVE,
    "quota_settle(uuid[], numeric, numeric, numeric, uuid, timestamptz[])": _SETTLE,
    "quota_extend(uuid, timestamptz)": _EXTEND,
    "quota_release_expired(timestamptz, integer)": _RELEASE_EXPIRED,
}

# Readers keep the former shape: one row per quota, with its window's use and holds.
_VIEW = """
CREATE VIEW quota_counters WITH (security_invoker = true) AS
SELECT l.organization_id, q.metric, q.period,
       CASE q.period WHEN 'minute' THEN l.minute_start WHEN 'day' THEN l.day_start
                     ELSE l.month_start END AS window_start,
       (CASE q.period || '.' || q.metric
            WHEN 'minute.requests' THEN l.minute_requests
            WHEN 'minute.tokens' THEN l.minute_tokens
            WHEN 'minute.cost_eur' THEN l.minute_cost_eur
            WHEN 'day.requests' THEN l.day_requests
            WHEN 'day.tokens' THEN l.day_tokens
            WHEN 'day.cost_eur' THEN l.day_cost_eur
            WHEN 'month.requests' THEN l.month_requests
            WHEN 'month.tokens' THEN l.month_tokens
            WHEN 'month.cost_eur' THEN l.month_cost_eur
        END) AS used,
       (CASE q.metric WHEN 'requests' THEN l.reserved_requests
                      WHEN 'tokens' THEN l.reserved_tokens
                      ELSE l.reserved_cost_eur END) AS reserved
FROM quota_ledger AS l
JOIN quotas AS q ON q.organization_id = l.organization_id
"""


def upgrade() -> None:
    op.create_table(
        "quota_ledger",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("minute_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("day_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("month_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("minute_requests", AMOUNT, server_default="0", nullable=False),
        sa.Column("minute_tokens", AMOUNT, server_default="0", nullable=False),
        sa.Column("minute_cost_eur", AMOUNT, server_default="0", nullable=False),
        sa.Column("day_requests", AMOUNT, server_default="0", nullable=False),
        sa.Column("day_tokens", AMOUNT, server_default="0", nullable=False),
        sa.Column("day_cost_eur", AMOUNT, server_default="0", nullable=False),
        sa.Column("month_requests", AMOUNT, server_default="0", nullable=False),
        sa.Column("month_tokens", AMOUNT, server_default="0", nullable=False),
        sa.Column("month_cost_eur", AMOUNT, server_default="0", nullable=False),
        sa.Column("reserved_requests", AMOUNT, server_default="0", nullable=False),
        sa.Column("reserved_tokens", AMOUNT, server_default="0", nullable=False),
        sa.Column("reserved_cost_eur", AMOUNT, server_default="0", nullable=False),
        sa.CheckConstraint(
            "reserved_requests >= 0 AND reserved_tokens >= 0 AND reserved_cost_eur >= 0",
            name=op.f("quota_ledger_reserved_not_negative_check"),
        ),
        sa.PrimaryKeyConstraint("organization_id", name=op.f("quota_ledger_pkey")),
    )
    # The current windows' use carries over; what was in flight is dropped (see above).
    op.execute("""
        INSERT INTO quota_ledger (
            organization_id, minute_start, day_start, month_start,
            minute_requests, minute_tokens, minute_cost_eur,
            day_requests, day_tokens, day_cost_eur,
            month_requests, month_tokens, month_cost_eur)
        SELECT c.organization_id, w.minute, w.day, w.month,
               coalesce(sum(c.used) FILTER (WHERE c.period = 'minute' AND c.metric = 'requests'
                                            AND c.window_start = w.minute), 0),
               coalesce(sum(c.used) FILTER (WHERE c.period = 'minute' AND c.metric = 'tokens'
                                            AND c.window_start = w.minute), 0),
               coalesce(sum(c.used) FILTER (WHERE c.period = 'minute' AND c.metric = 'cost_eur'
                                            AND c.window_start = w.minute), 0),
               coalesce(sum(c.used) FILTER (WHERE c.period = 'day' AND c.metric = 'requests'
                                            AND c.window_start = w.day), 0),
               coalesce(sum(c.used) FILTER (WHERE c.period = 'day' AND c.metric = 'tokens'
                                            AND c.window_start = w.day), 0),
               coalesce(sum(c.used) FILTER (WHERE c.period = 'day' AND c.metric = 'cost_eur'
                                            AND c.window_start = w.day), 0),
               coalesce(sum(c.used) FILTER (WHERE c.period = 'month' AND c.metric = 'requests'
                                            AND c.window_start = w.month), 0),
               coalesce(sum(c.used) FILTER (WHERE c.period = 'month' AND c.metric = 'tokens'
                                            AND c.window_start = w.month), 0),
               coalesce(sum(c.used) FILTER (WHERE c.period = 'month' AND c.metric = 'cost_eur'
                                            AND c.window_start = w.month), 0)
        FROM quota_counters AS c, (
            SELECT date_trunc('minute', now()) AS minute,
                   date_trunc('day', now(), 'Europe/Paris') AS day,
                   date_trunc('month', now(), 'Europe/Paris') AS month
        ) AS w
        GROUP BY c.organization_id, w.minute, w.day, w.month
    """)
    op.drop_table("quota_counters")
    op.execute(_VIEW)

    op.execute("DELETE FROM quota_reservations")
    op.drop_constraint(
        "quota_reservations_organization_id_fkey", "quota_reservations", type_="foreignkey"
    )
    op.drop_index("quota_reservations_expires_at_idx", table_name="quota_reservations")
    op.alter_column(
        "quota_reservations",
        "holds",
        type_=postgresql.ARRAY(sa.Uuid()),
        postgresql_using="'{}'::uuid[]",
    )

    for signature, statement in _FUNCTIONS.items():
        op.execute(statement)
        op.execute(f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC")
        op.execute(f"GRANT EXECUTE ON FUNCTION {signature} TO plume_app")

    op.execute("GRANT SELECT ON quota_ledger, quota_counters TO plume_app")
    op.execute("ALTER TABLE quota_ledger ENABLE ROW LEVEL SECURITY")
    op.execute(
        "CREATE POLICY quota_ledger_read ON quota_ledger FOR SELECT TO plume_app"
        f" USING {_IN_SCOPE_OR_ANCESTOR}"
    )
    op.execute("REVOKE INSERT, UPDATE, DELETE ON quota_reservations FROM plume_app")
    op.execute("DROP POLICY quota_reservations_tenant_scope ON quota_reservations")
    op.execute(
        "CREATE POLICY quota_reservations_read ON quota_reservations FOR SELECT TO plume_app"
        f" USING {_IN_SCOPE}"
    )

    op.execute("DROP POLICY quotas_insert ON quotas")
    op.execute("DROP POLICY quotas_update ON quotas")
    op.execute("DROP POLICY quotas_delete ON quotas")
    op.execute(
        "CREATE POLICY quotas_insert ON quotas FOR INSERT TO plume_app"
        f" WITH CHECK {_PARENT_IN_SCOPE}"
    )
    op.execute(
        "CREATE POLICY quotas_update ON quotas FOR UPDATE TO plume_app"
        f" USING {_PARENT_IN_SCOPE} WITH CHECK {_PARENT_IN_SCOPE}"
    )
    op.execute(
        f"CREATE POLICY quotas_delete ON quotas FOR DELETE TO plume_app USING {_PARENT_IN_SCOPE}"
    )


def downgrade() -> None:
    op.execute("DROP POLICY quotas_insert ON quotas")
    op.execute("DROP POLICY quotas_update ON quotas")
    op.execute("DROP POLICY quotas_delete ON quotas")
    op.execute(
        f"CREATE POLICY quotas_insert ON quotas FOR INSERT TO plume_app WITH CHECK {_IN_SCOPE}"
    )
    op.execute(
        "CREATE POLICY quotas_update ON quotas FOR UPDATE TO plume_app"
        f" USING {_IN_SCOPE} WITH CHECK {_IN_SCOPE}"
    )
    op.execute(f"CREATE POLICY quotas_delete ON quotas FOR DELETE TO plume_app USING {_IN_SCOPE}")
    for signature in _FUNCTIONS:
        op.execute(f"DROP FUNCTION {signature}")

    op.execute("DROP POLICY quota_reservations_read ON quota_reservations")
    op.execute(
        "CREATE POLICY quota_reservations_tenant_scope ON quota_reservations TO plume_app"
        f" USING {_IN_SCOPE} WITH CHECK {_IN_SCOPE}"
    )
    op.execute("GRANT INSERT, UPDATE, DELETE ON quota_reservations TO plume_app")
    op.execute("DELETE FROM quota_reservations")
    op.alter_column(
        "quota_reservations",
        "holds",
        type_=postgresql.JSONB(astext_type=sa.Text()),
        postgresql_using="'[]'::jsonb",
    )
    op.create_index(
        "quota_reservations_expires_at_idx", "quota_reservations", ["expires_at"], unique=False
    )
    op.create_foreign_key(
        "quota_reservations_organization_id_fkey",
        "quota_reservations",
        "organizations",
        ["organization_id"],
        ["id"],
        ondelete="RESTRICT",
    )

    op.execute("CREATE TABLE quota_counters_kept AS SELECT * FROM quota_counters")
    op.execute("DROP VIEW quota_counters")
    op.create_table(
        "quota_counters",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("metric", sa.String(length=16), nullable=False),
        sa.Column("period", sa.String(length=16), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used", AMOUNT, server_default="0", nullable=False),
        sa.Column("reserved", AMOUNT, server_default="0", nullable=False),
        sa.CheckConstraint(
            "reserved >= 0", name=op.f("quota_counters_reserved_not_negative_check")
        ),
        sa.CheckConstraint("used >= 0", name=op.f("quota_counters_used_not_negative_check")),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("quota_counters_organization_id_fkey"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint(
            "organization_id", "metric", "period", "window_start", name=op.f("quota_counters_pkey")
        ),
    )
    op.execute(
        "INSERT INTO quota_counters (organization_id, metric, period, window_start, used)"
        " SELECT organization_id, metric, period, window_start, used FROM quota_counters_kept"
    )
    op.execute("DROP TABLE quota_counters_kept")
    op.drop_table("quota_ledger")
    op.execute("GRANT SELECT, INSERT, UPDATE, DELETE ON quota_counters TO plume_app")
    op.execute("ALTER TABLE quota_counters ENABLE ROW LEVEL SECURITY")
    op.execute(
        "CREATE POLICY quota_counters_chain ON quota_counters TO plume_app"
        f" USING {_IN_SCOPE_OR_ANCESTOR} WITH CHECK {_IN_SCOPE_OR_ANCESTOR}"
    )
