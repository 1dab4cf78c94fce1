"""The ledger carries its organisation's limits; reserving and settling take scalars and
answer one row.

Measured on the request path, most of what quota enforcement cost was not PostgreSQL's
work but what surrounded it: arrays of windows and reservation ids to encode, six rows of
eight columns to decode on every request, the quotas read and matched by name in every
reservation. Now:

- each ledger row holds its organisation's limits (`{period}_{metric}_limit`, NULL where
  no quota is set), kept by a trigger on `quotas`: a reservation compares columns with
  columns;
- `quota_reserve` takes the request's time (`p_now`; the windows are its calendar periods
  in Europe/Paris) and answers a single row: the quota that refused (the one that stays
  shut the longest), or else the tightest after the reservation (for `RateLimit-*`). It
  is all or nothing: if one quota refuses, no level is touched;
- `quota_settle` settles one reservation, imperatively (delete it, then move its levels);
  the sweep settles the expired ones one by one.

Rows are locked in organisation order everywhere, so that reservations and settlements
never deadlock. The former functions come back on downgrade (from their own migration).

Revision ID: 9b51e3a7c2d4
Revises: 7d2f0c4b9e11
Create Date: 2026-11-27 20:40:00.000000+00:00
"""

# The SQL of this migration is generated from its own constants, never from input.
# ruff: noqa: S608

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import sqlalchemy as sa
from alembic import op

from plume.db import APP_ROLE, scope_predicate

revision: str = "9b51e3a7c2d4"
down_revision: str | None = "7d2f0c4b9e11"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PERIODS = ("minute", "day", "month")
METRICS = ("requests", "tokens", "cost_eur")
PAIRS = [(period, metric) for period in PERIODS for metric in METRICS]
LIMITS = [f"{period}_{metric}_limit" for period, metric in PAIRS]
AMOUNT = sa.Numeric(precision=20, scale=6)
# The windows of a ledger row that nothing has used yet: long past, so the first request
# rolls them to its own.
NEVER = "'1970-01-01 00:00:00+00'::timestamptz"

_DEFINER = (
    "LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public"
    " SET plan_cache_mode = force_generic_plan"
)
# What the request holds per metric while in flight.
_AMOUNT = {"requests": "1", "tokens": "p_tokens", "cost_eur": "p_cost"}
_RANK = {"minute": 1, "day": 2, "month": 3}
# What a settlement charges per metric.
_CHARGED = {"requests": "p_requests", "tokens": "p_tokens", "cost_eur": "p_cost"}
# The windows containing p_now: minutes are the same everywhere, days and months are
# calendar periods in Paris (daylight-saving changes included).
_WINDOWS = """
    w_minute CONSTANT timestamptz := date_trunc('minute', p_now);
    w_day CONSTANT timestamptz := date_trunc('day', p_now, 'Europe/Paris');
    w_month CONSTANT timestamptz := date_trunc('month', p_now, 'Europe/Paris');"""


def _previous() -> ModuleType:
    """The migration this one follows: its functions are what a downgrade restores."""
    path = Path(__file__).with_name("2026-11-27-1820_quota_ledger_functions.py")
    spec = importlib.util.spec_from_file_location("quota_ledger_functions", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _refuse_outside_scope(variable: str) -> str:
    return f"""
    IF NOT {scope_predicate(variable)} THEN
        RAISE EXCEPTION 'organisation % is outside this transaction''s scope', {variable}
            USING ERRCODE = 'insufficient_privilege';
    END IF;"""


def _use(row: str, period: str, metric: str) -> str:
    """A window's use in `row` as of the window w_{period}: zero once that window has
    rolled. Without a time (w_ NULL: a release), the use as it stands."""
    return (
        f"CASE WHEN w_{period} IS NULL OR {row}.{period}_start >= w_{period}"
        f" THEN {row}.{period}_{metric} ELSE 0 END"
    )


def _roll_and_add(row: str, added: dict[str, str]) -> str:
    """SET clauses: roll the row's windows forward (never back: a process whose clock lags a
    little) and add `added` (per metric) to each window's use."""
    clauses = [f"{period}_start = greatest({row}.{period}_start, w_{period})" for period in PERIODS]
    clauses += [
        f"{period}_{metric} = {_use(row, period, metric)} + {added[metric]}"
        for period, metric in PAIRS
    ]
    return ",\n            ".join(clauses)


_LIMITED = "(" + " OR ".join(f"l.{limit} IS NOT NULL" for limit in LIMITS) + ")"

# The levels of p_organization's chain (itself, its EPCI, the operator) that have quotas,
# their ledger rows locked in organisation order.
_LOCK_CHAIN = f"""
    WITH RECURSIVE chain AS (
        SELECT o.id, o.parent_id FROM public.organizations AS o WHERE o.id = p_organization
        UNION ALL
        SELECT o.id, o.parent_id FROM public.organizations AS o JOIN chain ON o.id = chain.parent_id
    ),
    locked AS MATERIALIZED (
        SELECT l.organization_id FROM public.quota_ledger AS l
        WHERE l.organization_id IN (SELECT chain.id FROM chain) AND {_LIMITED}
        ORDER BY l.organization_id
        FOR UPDATE OF l
    )
    SELECT coalesce(array_agg(locked.organization_id), '{{}}') INTO levels FROM locked;"""

# Each quota of the locked levels, one row per quota, as the ledger stands before the
# reservation, and whether the request fits in it.
_QUOTA_ROWS = ",\n            ".join(
    f"('{metric}', '{period}', l.{period}_{metric}_limit, w_{period}, {_AMOUNT[metric]},"
    f" {_use('l', period, metric)}, l.reserved_{metric}, {_RANK[period]})"
    for period, metric in PAIRS
)

# Reserve against every level of the chain that has quotas, all or nothing: if one quota
# would go over, no level is touched. One row comes back: the refusing quota that stays
# shut the longest (accepted false, used and reserved as they stand), or else the quota
# left tightest by the reservation (used and reserved after it). No row: no quota applies.
_RESERVE = f"""
CREATE FUNCTION quota_reserve(
    p_id uuid, p_organization uuid, p_now timestamptz, p_tokens numeric, p_cost numeric,
    p_expires_at timestamptz)
RETURNS TABLE (organization_id uuid, metric text, period text, quota numeric,
               window_start timestamptz, amount numeric, used numeric, reserved numeric,
               accepted boolean)
{_DEFINER} AS $$
DECLARE{_WINDOWS}
    levels uuid[];
BEGIN{_refuse_outside_scope("p_organization")}{_LOCK_CHAIN}
    IF cardinality(levels) = 0 THEN
        RETURN;
    END IF;
    RETURN QUERY
    WITH wanted AS MATERIALIZED (
        SELECT l.organization_id, v.metric, v.period, v.quota, v.window_start, v.amount,
               v.used, v.reserved, v.rank,
               v.used + v.reserved + v.amount <= v.quota AS fits
        FROM public.quota_ledger AS l,
        LATERAL (VALUES
            {_QUOTA_ROWS}
        ) AS v(metric, period, quota, window_start, amount, used, reserved, rank)
        WHERE l.organization_id = ANY (levels) AND v.quota IS NOT NULL
    ),
    taken AS (
        UPDATE public.quota_ledger AS l SET
            {_roll_and_add("l", dict.fromkeys(METRICS, "0"))},
            reserved_requests = l.reserved_requests + 1,
            reserved_tokens = l.reserved_tokens + p_tokens,
            reserved_cost_eur = l.reserved_cost_eur + p_cost
        WHERE l.organization_id = ANY (levels)
          AND NOT EXISTS (SELECT FROM wanted AS w WHERE NOT w.fits)
        RETURNING l.organization_id
    ),
    held AS (
        INSERT INTO public.quota_reservations
            (id, organization_id, tokens, cost_eur, holds, expires_at)
        SELECT p_id, p_organization, p_tokens, p_cost,
               array_agg(taken.organization_id ORDER BY taken.organization_id), p_expires_at
        FROM taken
        HAVING count(*) > 0
    )
    SELECT q.organization_id, q.metric, q.period, q.quota, q.window_start, q.amount, q.used,
           q.reserved + CASE WHEN q.fits THEN q.amount ELSE 0 END, q.fits
    FROM wanted AS q
    ORDER BY q.fits,
             CASE WHEN NOT q.fits THEN -q.rank END,
             (q.quota - q.used - q.reserved - q.amount) / q.quota,
             q.rank
    LIMIT 1;
END
$$"""

# Replace what a reservation held by what was used (zero releases), in the windows of
# p_now. A reservation already settled or swept is gone, so nothing is settled twice; a
# charged request whose reservation is gone (swept after its TTL, or lost with an
# asynchronous commit) is charged anyway, to its chain as it stands: it has happened.
_SETTLE = f"""
CREATE FUNCTION quota_settle(
    p_id uuid, p_requests numeric, p_tokens numeric, p_cost numeric,
    p_organization uuid, p_now timestamptz)
RETURNS boolean
{_DEFINER} AS $$
DECLARE{_WINDOWS}
    gone public.quota_reservations%ROWTYPE;
    levels uuid[];
BEGIN
    DELETE FROM public.quota_reservations AS r
    WHERE r.id = p_id AND {scope_predicate("r.organization_id")}
    RETURNING r.* INTO gone;
    IF FOUND THEN
        WITH locked AS MATERIALIZED (
            SELECT l.organization_id FROM public.quota_ledger AS l
            WHERE l.organization_id = ANY (gone.holds)
            ORDER BY l.organization_id
            FOR UPDATE OF l
        )
        UPDATE public.quota_ledger AS l SET
            {_roll_and_add("l", _CHARGED)},
            reserved_requests = l.reserved_requests - 1,
            reserved_tokens = l.reserved_tokens - gone.tokens,
            reserved_cost_eur = l.reserved_cost_eur - gone.cost_eur
        FROM locked
        WHERE l.organization_id = locked.organization_id;
        RETURN true;
    END IF;
    IF p_requests = 0 THEN
        RETURN false;
    END IF;{_refuse_outside_scope("p_organization")}{_LOCK_CHAIN}
    UPDATE public.quota_ledger AS l SET
        {_roll_and_add("l", _CHARGED)}
    WHERE l.organization_id = ANY (levels);
    RETURN false;
END
$$"""

# Reservations whose request died with its process, released one by one; returns how
# many. Only the system's sweep, whose scope is every organisation, may do it.
_RELEASE_EXPIRED = """
CREATE FUNCTION quota_release_expired(p_now timestamptz, p_batch integer) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    due record;
    released integer := 0;
BEGIN
    IF current_setting('plume.all_organizations', true) IS DISTINCT FROM 'on' THEN
        RAISE EXCEPTION 'only the system sweeps reservations'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    FOR due IN
        SELECT r.id FROM public.quota_reservations AS r
        WHERE r.expires_at < p_now
        ORDER BY r.expires_at
        LIMIT p_batch
        FOR UPDATE SKIP LOCKED
    LOOP
        PERFORM public.quota_settle(due.id, 0, 0, 0, NULL, NULL);
        released := released + 1;
    END LOOP;
    RETURN released;
END
$$"""

# An organisation's limits, copied into its ledger row (created if need be) whenever one
# of its quotas changes. Owned by the migrating role: the application cannot write the
# ledger itself.
_LIMITS_OF = ",\n           ".join(
    f"max(q.\"limit\") FILTER (WHERE q.period = '{period}' AND q.metric = '{metric}')"
    for period, metric in PAIRS
)
_COPY_LIMITS = f"""
    INSERT INTO public.quota_ledger AS l
        (organization_id, minute_start, day_start, month_start, {", ".join(LIMITS)})
    SELECT o.id, {NEVER}, {NEVER}, {NEVER},
           {_LIMITS_OF}
    FROM public.organizations AS o
    LEFT JOIN public.quotas AS q ON q.organization_id = o.id
    WHERE o.id = {{organization}}
    GROUP BY o.id
    ON CONFLICT ON CONSTRAINT quota_ledger_pkey DO UPDATE SET
        {", ".join(f"{limit} = excluded.{limit}" for limit in LIMITS)};"""

_TRIGGER_FUNCTION = f"""
CREATE FUNCTION quota_ledger_copy_limits() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN{_COPY_LIMITS.format(organization="OLD.organization_id")}
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN{_COPY_LIMITS.format(organization="NEW.organization_id")}
    END IF;
    RETURN NULL;
END
$$"""

# The previous migration's functions that these replace (a downgrade restores them).
_REPLACED = [
    "quota_release_expired(timestamptz, integer)",
    "quota_reserve(uuid, uuid, timestamptz[], numeric, numeric, timestamptz)",
    "quota_settle(uuid[], numeric, numeric, numeric, uuid, timestamptz[])",
]
_FUNCTIONS = {
    "quota_reserve(uuid, uuid, timestamptz, numeric, numeric, timestamptz)": _RESERVE,
    "quota_settle(uuid, numeric, numeric, numeric, uuid, timestamptz)": _SETTLE,
    "quota_release_expired(timestamptz, integer)": _RELEASE_EXPIRED,
}


def _drop_functions(signatures: Sequence[str]) -> None:
    for signature in signatures:
        op.execute(f"DROP FUNCTION {signature}")


def _create_functions(functions: dict[str, str]) -> None:
    for signature, body in functions.items():
        op.execute(body)
        op.execute(f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC")
        op.execute(f"GRANT EXECUTE ON FUNCTION {signature} TO {APP_ROLE}")


def upgrade() -> None:
    for limit in LIMITS:
        op.add_column("quota_ledger", sa.Column(limit, AMOUNT, nullable=True))
    op.execute(_TRIGGER_FUNCTION)
    op.execute("REVOKE ALL ON FUNCTION quota_ledger_copy_limits() FROM PUBLIC")
    op.execute(
        "CREATE TRIGGER quotas_copy_limits AFTER INSERT OR UPDATE OR DELETE ON quotas"
        " FOR EACH ROW EXECUTE FUNCTION quota_ledger_copy_limits()"
    )
    op.execute(
        "DO $$ DECLARE organization uuid; BEGIN"
        " FOR organization IN SELECT DISTINCT q.organization_id FROM quotas AS q LOOP"
        + _COPY_LIMITS.format(organization="organization")
        + " END LOOP; END $$"
    )
    # quota_extend stays as it is.
    _drop_functions(_REPLACED)
    _create_functions(_FUNCTIONS)


def downgrade() -> None:
    _drop_functions(list(_FUNCTIONS))
    previous: dict[str, str] = _previous()._FUNCTIONS
    _create_functions({signature: previous[signature] for signature in _REPLACED})
    op.execute("DROP TRIGGER quotas_copy_limits ON quotas")
    op.execute("DROP FUNCTION quota_ledger_copy_limits()")
    for limit in LIMITS:
        op.drop_column("quota_ledger", limit)
