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

# The SQL of this migration is generated from its own constants, never from input.
# ruff: noqa: S608

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from plume.db import APP_ROLE, ancestor_predicate, scope_predicate

revision: str = "7d2f0c4b9e11"
down_revision: str | None = "5ffdfdee1450"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PERIODS = ("minute", "day", "month")
METRICS = ("requests", "tokens", "cost_eur")
PAIRS = [(period, metric) for period in PERIODS for metric in METRICS]
AMOUNT = sa.Numeric(precision=20, scale=6)

# A generic plan, planned once per connection: re-planning these statements on each call
# (what PostgreSQL chooses by itself here) costs more than running them. Table names are
# schema-qualified and the search path pinned, as befits SECURITY DEFINER.
_DEFINER = (
    "LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public"
    " SET plan_cache_mode = force_generic_plan"
)


def _refuse_outside_scope(variable: str) -> str:
    return f"""
    IF NOT {scope_predicate(variable)} THEN
        RAISE EXCEPTION 'organisation % is outside this transaction''s scope', {variable}
            USING ERRCODE = 'insufficient_privilege';
    END IF;"""


def _use_now(row: str, period: str, metric: str, rolling: bool) -> str:
    """A window's use in `row`; `rolling`: as of the windows p_windows (minute, day, month
    starts), so zero once that window has rolled (NULL windows, a release, keep it)."""
    if not rolling:
        return f"{row}.{period}_{metric}"
    index = PERIODS.index(period) + 1
    return (
        f"CASE WHEN p_windows[{index}] IS NULL OR {row}.{period}_start >= p_windows[{index}]"
        f" THEN {row}.{period}_{metric} ELSE 0 END"
    )


def _quota_use(row: str, quota: str, rolling: bool = True) -> str:
    """The use of the quota `quota` (its period and metric) in the ledger `row`."""
    cases = " ".join(
        f"WHEN '{period}.{metric}' THEN {_use_now(row, period, metric, rolling)}"
        for period, metric in PAIRS
    )
    return f"(CASE {quota}.period || '.' || {quota}.metric {cases} END)"


def _quota_held(row: str, quota: str) -> str:
    return (
        f"(CASE {quota}.metric WHEN 'requests' THEN {row}.reserved_requests"
        f" WHEN 'tokens' THEN {row}.reserved_tokens ELSE {row}.reserved_cost_eur END)"
    )


def _amount(metric: str) -> str:
    return (
        f"(CASE {metric} WHEN 'requests' THEN p_requests"
        " WHEN 'tokens' THEN p_tokens ELSE p_cost END)"
    )


_ADDED = {"requests": "p_requests", "tokens": "p_tokens", "cost_eur": "p_cost"}
_NOTHING = dict.fromkeys(METRICS, "0")


def _roll_and_add(row: str, added: dict[str, str]) -> str:
    """SET clauses: roll the row's windows forward to p_windows (never back: a process whose
    clock lags a little) and add `added` (per metric) to each window's use."""
    clauses = [
        f"{period}_start = greatest({row}.{period}_start, p_windows[{index}])"
        for index, period in enumerate(PERIODS, start=1)
    ]
    clauses += [
        f"{period}_{metric} = {_use_now(row, period, metric, True)} + {added[metric]}"
        for period, metric in PAIRS
    ]
    return ",\n            ".join(clauses)


_CHAIN = """
    WITH RECURSIVE chain AS (
        SELECT o.id, o.parent_id FROM public.organizations AS o WHERE o.id = p_organization
        UNION ALL
        SELECT o.id, o.parent_id FROM public.organizations AS o JOIN chain ON o.id = chain.parent_id
    )"""
_WINDOW_OF = "p_windows[CASE w.period WHEN 'minute' THEN 1 WHEN 'day' THEN 2 ELSE 3 END]"
_USED = ", ".join(f"{period}_{metric}" for period, metric in PAIRS)

# Reserve against each level of the chain that has quotas: one ledger row per level, taken
# only if none of the level's quotas would go over. A level that refuses keeps its row
# unchanged and its quotas come back with used and reserved NULL: the caller then rolls
# the whole transaction back (all or nothing). Rows are locked in organisation order
# everywhere, so reservations and settlements never deadlock.
_RESERVE = f"""
CREATE FUNCTION quota_reserve(
    p_id uuid, p_organization uuid, p_windows timestamptz[], p_tokens numeric,
    p_cost numeric, p_expires_at timestamptz)
RETURNS TABLE (organization_id uuid, metric text, period text, quota numeric,
               window_start timestamptz, amount numeric, used numeric, reserved numeric)
{_DEFINER} AS $$
DECLARE
    p_requests CONSTANT numeric := 1;
BEGIN{_refuse_outside_scope("p_organization")}
    RETURN QUERY{_CHAIN},
    wanted AS MATERIALIZED (
        SELECT q.organization_id, q.metric, q.period, q."limit", {_amount("q.metric")} AS amount
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
            {_roll_and_add("l", _NOTHING)},
            reserved_requests = l.reserved_requests + p_requests,
            reserved_tokens = l.reserved_tokens + p_tokens,
            reserved_cost_eur = l.reserved_cost_eur + p_cost
        WHERE NOT EXISTS (
            SELECT FROM wanted AS q
            WHERE q.organization_id = l.organization_id
              AND {_quota_use("l", "q")} + {_quota_held("l", "q")} + q.amount > q."limit")
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
    SELECT w.organization_id, w.metric::text, w.period::text, w."limit", {_WINDOW_OF},
           w.amount,
           CASE WHEN t.organization_id IS NOT NULL THEN {_quota_use("t", "w")} END,
           CASE WHEN t.organization_id IS NOT NULL THEN {_quota_held("t", "w")} END
    FROM wanted AS w
    LEFT JOIN taken AS t ON t.organization_id = w.organization_id;
END
$$"""

# Replace what reservations held by what was used (zero releases), in the current windows.
# A reservation already settled or swept is gone, so nothing is settled twice; a charged
# request whose reservation is gone (swept after its TTL, or lost with an asynchronous
# commit) is charged anyway, unconditionally: it has happened.
_SETTLE = f"""
CREATE FUNCTION quota_settle(
    p_ids uuid[], p_requests numeric, p_tokens numeric, p_cost numeric,
    p_organization uuid, p_windows timestamptz[])
RETURNS boolean
{_DEFINER} AS $$
DECLARE
    released integer;
BEGIN
    WITH gone AS (
        DELETE FROM public.quota_reservations AS r
        WHERE r.id = ANY (p_ids) AND {scope_predicate("r.organization_id")}
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
            {_roll_and_add("l", _ADDED)},
            reserved_requests = l.reserved_requests - held.requests,
            reserved_tokens = l.reserved_tokens - held.tokens,
            reserved_cost_eur = l.reserved_cost_eur - held.cost_eur
        FROM held JOIN locked ON locked.organization_id = held.level
        WHERE l.organization_id = held.level
    )
    SELECT count(*) INTO released FROM gone;
    IF released > 0 OR p_requests = 0 THEN
        RETURN released > 0;
    END IF;{_refuse_outside_scope("p_organization")}{_CHAIN}
    INSERT INTO public.quota_ledger AS l
        (organization_id, minute_start, day_start, month_start, {_USED})
    SELECT DISTINCT q.organization_id, p_windows[1], p_windows[2], p_windows[3],
           {", ".join(_ADDED[metric] for _, metric in PAIRS)}
    FROM public.quotas AS q
    WHERE q.organization_id IN (SELECT chain.id FROM chain)
    ORDER BY q.organization_id
    ON CONFLICT ON CONSTRAINT quota_ledger_pkey DO UPDATE SET
            {_roll_and_add("l", _ADDED)};
    RETURN false;
END
$$"""

# A synthèse accepted as a job keeps its reservation until the job ends.
_EXTEND = f"""
CREATE FUNCTION quota_extend(p_id uuid, p_expires_at timestamptz) RETURNS void
{_DEFINER} AS $$
BEGIN
    UPDATE public.quota_reservations AS r SET expires_at = p_expires_at
    WHERE r.id = p_id AND {scope_predicate("r.organization_id")};
END
$$"""

# Reservations whose request died with its process, released; returns how many. Only the
# system's sweep, whose scope is every organisation, may do it.
_RELEASE_EXPIRED = f"""
CREATE FUNCTION quota_release_expired(p_now timestamptz, p_batch integer) RETURNS integer
{_DEFINER} AS $$
DECLARE
    expired uuid[];
BEGIN
    IF current_setting('plume.all_organizations', true) IS DISTINCT FROM 'on' THEN
        RAISE EXCEPTION 'only the system sweeps reservations'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    SELECT coalesce(array_agg(due.id), '{{}}') INTO expired FROM (
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
_VIEW = f"""
CREATE VIEW quota_counters WITH (security_invoker = true) AS
SELECT l.organization_id, q.metric, q.period,
       CASE q.period WHEN 'minute' THEN l.minute_start WHEN 'day' THEN l.day_start
                     ELSE l.month_start END AS window_start,
       {_quota_use("l", "q", rolling=False)} AS used,
       {_quota_held("l", "q")} AS reserved
FROM quota_ledger AS l
JOIN quotas AS q ON q.organization_id = l.organization_id
"""

# An organisation whose parent is in scope: an EPCI admin's communes.
_PARENT_IN_SCOPE = (
    "(organization_id IN (SELECT o.id FROM organizations AS o"
    f" WHERE {scope_predicate('o.parent_id')}))"
)


def _own_or_ancestor() -> str:
    return f"({scope_predicate('organization_id')} OR {ancestor_predicate('organization_id')})"


def upgrade() -> None:
    op.create_table(
        "quota_ledger",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        *(
            sa.Column(f"{period}_start", sa.DateTime(timezone=True), nullable=False)
            for period in PERIODS
        ),
        *(
            sa.Column(f"{period}_{metric}", AMOUNT, server_default="0", nullable=False)
            for period, metric in PAIRS
        ),
        *(
            sa.Column(f"reserved_{metric}", AMOUNT, server_default="0", nullable=False)
            for metric in METRICS
        ),
        sa.CheckConstraint(
            "reserved_requests >= 0 AND reserved_tokens >= 0 AND reserved_cost_eur >= 0",
            name=op.f("quota_ledger_reserved_not_negative_check"),
        ),
        sa.PrimaryKeyConstraint("organization_id", name=op.f("quota_ledger_pkey")),
    )
    # The current windows' use carries over; what was in flight is dropped (see above).
    used = ",\n".join(
        f"coalesce(sum(c.used) FILTER (WHERE c.period = '{period}' AND c.metric = '{metric}'"
        f" AND c.window_start = w.{period}), 0)"
        for period, metric in PAIRS
    )
    op.execute(f"""
        INSERT INTO quota_ledger (organization_id, minute_start, day_start, month_start, {_USED})
        SELECT c.organization_id, w.minute, w.day, w.month,
               {used}
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

    for signature, body in _FUNCTIONS.items():
        op.execute(body)
        op.execute(f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC")
        op.execute(f"GRANT EXECUTE ON FUNCTION {signature} TO {APP_ROLE}")

    op.execute(f"GRANT SELECT ON quota_ledger, quota_counters TO {APP_ROLE}")
    op.execute("ALTER TABLE quota_ledger ENABLE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY quota_ledger_read ON quota_ledger FOR SELECT TO {APP_ROLE}"
        f" USING {_own_or_ancestor()}"
    )
    op.execute(f"REVOKE INSERT, UPDATE, DELETE ON quota_reservations FROM {APP_ROLE}")
    op.execute("DROP POLICY quota_reservations_tenant_scope ON quota_reservations")
    op.execute(
        f"CREATE POLICY quota_reservations_read ON quota_reservations FOR SELECT TO {APP_ROLE}"
        f" USING {scope_predicate('organization_id')}"
    )

    for command in ("insert", "update", "delete"):
        op.execute(f"DROP POLICY quotas_{command} ON quotas")
    for command in ("INSERT", "UPDATE", "DELETE"):
        clause = "" if command == "INSERT" else f" USING {_PARENT_IN_SCOPE}"
        check = "" if command == "DELETE" else f" WITH CHECK {_PARENT_IN_SCOPE}"
        op.execute(
            f"CREATE POLICY quotas_{command.lower()} ON quotas FOR {command} TO {APP_ROLE}"
            f"{clause}{check}"
        )


def downgrade() -> None:
    own = scope_predicate("organization_id")
    for command in ("insert", "update", "delete"):
        op.execute(f"DROP POLICY quotas_{command} ON quotas")
    for command in ("INSERT", "UPDATE", "DELETE"):
        clause = "" if command == "INSERT" else f" USING {own}"
        check = "" if command == "DELETE" else f" WITH CHECK {own}"
        op.execute(
            f"CREATE POLICY quotas_{command.lower()} ON quotas FOR {command} TO {APP_ROLE}"
            f"{clause}{check}"
        )
    for signature in _FUNCTIONS:
        op.execute(f"DROP FUNCTION {signature}")

    op.execute("DROP POLICY quota_reservations_read ON quota_reservations")
    op.execute(
        f"CREATE POLICY quota_reservations_tenant_scope ON quota_reservations TO {APP_ROLE}"
        f" USING {own} WITH CHECK {own}"
    )
    op.execute(f"GRANT INSERT, UPDATE, DELETE ON quota_reservations TO {APP_ROLE}")
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
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON quota_counters TO {APP_ROLE}")
    op.execute("ALTER TABLE quota_counters ENABLE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY quota_counters_chain ON quota_counters TO {APP_ROLE}"
        f" USING {_own_or_ancestor()} WITH CHECK {_own_or_ancestor()}"
    )
