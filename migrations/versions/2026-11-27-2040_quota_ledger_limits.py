"""The ledger carries its organisation's limits; reserving and settling take scalars, run
one statement each and answer one row.

Measured on the request path, much of what quota enforcement cost was not the ledger's
update but what surrounded it: arrays of windows and reservation ids to encode, six rows
of eight columns to decode on every request, the quotas read and matched by name, and a
statement of its own to lock the levels before reserving. Now:

- each ledger row holds its organisation's limits (`{period}_{metric}_limit`, NULL where
  no quota is set), kept by a trigger on `quotas`: a reservation raises the holds of each
  level in one `UPDATE` and reads from the rows it returns whether they fit (columns
  compared with columns); the caller rolls back a refusal;
- `quota_reserve` takes the request's time (`p_now`; the windows are its calendar periods
  in Europe/Paris) and answers a single row: the quota that refused (the one that stays
  shut the longest), or else the tightest after the reservation (for `RateLimit-*`);
- `quota_settle` deletes the reservation and moves its levels in one statement; the sweep
  settles expired reservations one by one.

Rows are locked in organisation order everywhere (see _DEFINER), so that reservations and
settlements never deadlock. The former functions come back on downgrade (from their own
migration).

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


def _previous() -> ModuleType:
    """The migration this one follows (never changed once written)."""
    path = Path(__file__).with_name("2026-11-27-1820_quota_ledger_functions.py")
    spec = importlib.util.spec_from_file_location("quota_ledger_functions", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# The migration this one follows: its functions are what a downgrade restores, and its
# constants and scope check are this one's too.
_PREVIOUS = _previous()
PERIODS = _PREVIOUS.PERIODS
METRICS = _PREVIOUS.METRICS
PAIRS = _PREVIOUS.PAIRS
AMOUNT = _PREVIOUS.AMOUNT
_refuse_outside_scope = _PREVIOUS._refuse_outside_scope
LIMITS = [f"{period}_{metric}_limit" for period, metric in PAIRS]
# The windows of a ledger row that nothing has used yet: long past, so the first request
# rolls them to its own.
NEVER = "'1970-01-01 00:00:00+00'::timestamptz"

# A generic plan, planned once per connection: re-planning these statements on each call
# costs more than running them. The ledger is read through its primary key only, whose
# index scan visits `organization_id = ANY (…)` in ascending order: every statement that
# moves several ledger rows locks them in that one order, so that reservations and
# settlements never deadlock (a sequential or bitmap scan would follow the rows' places
# on disk instead). Tables are schema-qualified and the search path pinned, as befits
# SECURITY DEFINER.
_DEFINER = (
    "LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public"
    " SET plan_cache_mode = force_generic_plan"
    " SET enable_seqscan = off SET enable_bitmapscan = off"
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


def _use(row: str, period: str, metric: str) -> str:
    """A window's use in the ledger `row` as of the window w_{period}: zero once that
    window has rolled. Without a time (w_ NULL: a release), the use as it stands."""
    return (
        f"CASE WHEN w_{period} IS NULL OR {row}.{period}_start >= w_{period}"
        f" THEN {row}.{period}_{metric} ELSE 0 END"
    )


def _roll_and_add(added: dict[str, str]) -> str:
    """SET clauses for the ledger row `l`: roll its windows forward (never back: a process
    whose clock lags a little) and add `added` (per metric) to each window's use."""
    clauses = [f"{period}_start = greatest(l.{period}_start, w_{period})" for period in PERIODS]
    clauses += [
        f"{period}_{metric} = {_use('l', period, metric)} + {added[metric]}"
        for period, metric in PAIRS
    ]
    return ",\n            ".join(clauses)


def _limited(row: str) -> str:
    """Whether the ledger row has at least one quota."""
    return "(" + " OR ".join(f"{row}.{limit} IS NOT NULL" for limit in LIMITS) + ")"


# p_organization's chain: itself, its EPCI, the operator.
_CHAIN = """
    WITH RECURSIVE chain AS (
        SELECT o.id, o.parent_id FROM public.organizations AS o WHERE o.id = p_organization
        UNION ALL
        SELECT o.id, o.parent_id FROM public.organizations AS o JOIN chain ON o.id = chain.parent_id
    )"""

# One row per quota of a level that took the reservation (`t`, after it): its limit,
# window, the request's amount, the use and what requests in flight hold, this one
# included.
_QUOTA_ROWS = ",\n            ".join(
    f"('{metric}', '{period}', t.{period}_{metric}_limit, w_{period}, {_AMOUNT[metric]},"
    f" {_use('t', period, metric)}, t.reserved_{metric}, {_RANK[period]})"
    for period, metric in PAIRS
)

# Reserve against every level of the chain that has quotas: each level's row is locked
# and its holds raised, whatever they reach, in the one statement (the row as it stands
# once locked, a concurrent request's change included). Whether the request fits is read
# from the rows it left: if one quota is over, the caller rolls the transaction back, and
# the row locks kept other requests from seeing the holds meanwhile. One row comes back:
# the quota over its limit that stays shut the longest (accepted false; reserved as it
# stood), or else the quota left tightest by the reservation. No row: no quota applies.
_RESERVE = f"""
CREATE FUNCTION quota_reserve(
    p_id uuid, p_organization uuid, p_now timestamptz, p_tokens numeric, p_cost numeric,
    p_expires_at timestamptz)
RETURNS TABLE (organization_id uuid, metric text, period text, quota numeric,
               window_start timestamptz, amount numeric, used numeric, reserved numeric,
               accepted boolean)
{_DEFINER} AS $$
DECLARE{_WINDOWS}
BEGIN{_refuse_outside_scope("p_organization")}
    RETURN QUERY{_CHAIN},
    taken AS (
        UPDATE public.quota_ledger AS l SET
            reserved_requests = l.reserved_requests + 1,
            reserved_tokens = l.reserved_tokens + p_tokens,
            reserved_cost_eur = l.reserved_cost_eur + p_cost
        WHERE l.organization_id = ANY (ARRAY(SELECT chain.id FROM chain)) AND {_limited("l")}
        RETURNING l.*
    ),
    held AS (
        INSERT INTO public.quota_reservations
            (id, organization_id, tokens, cost_eur, holds, expires_at)
        SELECT p_id, p_organization, p_tokens, p_cost,
               array_agg(taken.organization_id ORDER BY taken.organization_id), p_expires_at
        FROM taken
        HAVING count(*) > 0
    ),
    answer AS (
        SELECT t.organization_id, v.metric, v.period, v.quota, v.window_start, v.amount,
               v.used, v.reserved, v.rank, v.used + v.reserved <= v.quota AS fits
        FROM taken AS t,
        LATERAL (VALUES
            {_QUOTA_ROWS}
        ) AS v(metric, period, quota, window_start, amount, used, reserved, rank)
        WHERE v.quota IS NOT NULL
    )
    SELECT q.organization_id, q.metric, q.period, q.quota, q.window_start, q.amount, q.used,
           q.reserved - CASE WHEN q.fits THEN 0 ELSE q.amount END, q.fits
    FROM answer AS q
    ORDER BY q.fits,
             CASE WHEN NOT q.fits THEN -q.rank END,
             (q.quota - q.used - q.reserved) / q.quota,
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
    moved integer;
BEGIN
    WITH gone AS (
        DELETE FROM public.quota_reservations AS r
        WHERE r.id = p_id AND {scope_predicate("r.organization_id")}
        RETURNING r.tokens, r.cost_eur, r.holds
    )
    UPDATE public.quota_ledger AS l SET
        {_roll_and_add(_CHARGED)},
        reserved_requests = l.reserved_requests - 1,
        reserved_tokens = l.reserved_tokens - gone.tokens,
        reserved_cost_eur = l.reserved_cost_eur - gone.cost_eur
    FROM gone
    WHERE l.organization_id = ANY (gone.holds);
    GET DIAGNOSTICS moved = ROW_COUNT;
    IF moved > 0 OR p_requests = 0 THEN
        RETURN moved > 0;
    END IF;{_refuse_outside_scope("p_organization")}
    UPDATE public.quota_ledger AS l SET
        {_roll_and_add(_CHARGED)}
    WHERE l.organization_id = ANY (ARRAY({_CHAIN} SELECT chain.id FROM chain))
      AND {_limited("l")};
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

_COPY_OLD = _COPY_LIMITS.format(organization="OLD.organization_id")
_TRIGGER_FUNCTION = f"""
CREATE FUNCTION quota_ledger_copy_limits() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
BEGIN
    -- The organisation a quota left (deleted, or moved to another): once, not twice.
    IF TG_OP = 'DELETE'
       OR (TG_OP = 'UPDATE' AND OLD.organization_id <> NEW.organization_id) THEN{_COPY_OLD}
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
    previous: dict[str, str] = _PREVIOUS._FUNCTIONS
    _create_functions({signature: previous[signature] for signature in _REPLACED})
    op.execute("DROP TRIGGER quotas_copy_limits ON quotas")
    op.execute("DROP FUNCTION quota_ledger_copy_limits()")
    for limit in LIMITS:
        op.drop_column("quota_ledger", limit)
