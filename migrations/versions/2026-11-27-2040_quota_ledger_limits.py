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

Rows are locked in organisation order everywhere (see the functions' options below), so
that reservations and settlements never deadlock. The former functions come back on
downgrade: their text, as the previous migration created it, is copied here.

Revision ID: 9b51e3a7c2d4
Revises: 7d2f0c4b9e11
Create Date: 2026-11-27 20:40:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "9b51e3a7c2d4"
down_revision: str | None = "7d2f0c4b9e11"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

AMOUNT = sa.Numeric(precision=20, scale=6)
# An organisation's limits, one column per quota it may have (NULL: no such quota).
LIMITS = (
    "minute_requests_limit",
    "minute_tokens_limit",
    "minute_cost_eur_limit",
    "day_requests_limit",
    "day_tokens_limit",
    "day_cost_eur_limit",
    "month_requests_limit",
    "month_tokens_limit",
    "month_cost_eur_limit",
)

# The functions' bodies (between the $$) are, byte for byte, the text this revision has
# always given PostgreSQL, which keeps it as it was written (pg_get_functiondef, pg_dump):
# it was generated, and some of its lines are long. Inside these strings, a backslash at
# the end of a line joins it to the next one (Python drops both), so the source wraps where
# the text does not. services/plume/quotas/sql/ holds the same functions hand-formatted and
# commented (as a later migration created them).
#
# A generic plan, planned once per connection: re-planning these statements on each call
# costs more than running them. The ledger is read through its primary key only, whose
# index scan visits `organization_id = ANY (…)` in ascending order: every statement that
# moves several ledger rows locks them in that one order, so that reservations and
# settlements never deadlock (a sequential or bitmap scan would follow the rows' places
# on disk instead). Tables are schema-qualified and the search path pinned, as befits
# SECURITY DEFINER.
#
# The windows containing p_now: minutes are the same everywhere, days and months are
# calendar periods in Paris (daylight-saving changes included). A window's use counts as
# of its window: zero once that window has rolled; without a time (a release), as it
# stands. Windows roll forward, never back (a process whose clock lags a little).

# Reserve against every level of the chain that has quotas: each level's row is locked
# and its holds raised, whatever they reach, in the one statement (the row as it stands
# once locked, a concurrent request's change included). Whether the request fits is read
# from the rows it left: if one quota is over, the caller rolls the transaction back, and
# the row locks kept other requests from seeing the holds meanwhile. One row comes back:
# the quota over its limit that stays shut the longest (accepted false; reserved as it
# stood), or else the quota left tightest by the reservation. No row: no quota applies.
_RESERVE = """
CREATE FUNCTION quota_reserve(
    p_id uuid, p_organization uuid, p_now timestamptz, p_tokens numeric, p_cost numeric,
    p_expires_at timestamptz)
RETURNS TABLE (organization_id uuid, metric text, period text, quota numeric,
               window_start timestamptz, amount numeric, used numeric, reserved numeric,
               accepted boolean)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off SET enable_bitmapscan = off
AS $$
DECLARE
    w_minute CONSTANT timestamptz := date_trunc('minute', p_now);
    w_day CONSTANT timestamptz := date_trunc('day', p_now, 'Europe/Paris');
    w_month CONSTANT timestamptz := date_trunc('month', p_now, 'Europe/Paris');
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
    taken AS (
        UPDATE public.quota_ledger AS l SET
            reserved_requests = l.reserved_requests + 1,
            reserved_tokens = l.reserved_tokens + p_tokens,
            reserved_cost_eur = l.reserved_cost_eur + p_cost
        WHERE l.organization_id = ANY (ARRAY(SELECT chain.id FROM chain))\
 AND (l.minute_requests_limit IS NOT NULL OR l.minute_tokens_limit IS NOT NULL\
 OR l.minute_cost_eur_limit IS NOT NULL OR l.day_requests_limit IS NOT NULL\
 OR l.day_tokens_limit IS NOT NULL OR l.day_cost_eur_limit IS NOT NULL\
 OR l.month_requests_limit IS NOT NULL OR l.month_tokens_limit IS NOT NULL\
 OR l.month_cost_eur_limit IS NOT NULL)
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
            ('requests', 'minute', t.minute_requests_limit, w_minute, 1, CASE\
 WHEN w_minute IS NULL OR t.minute_start >= w_minute THEN t.minute_requests\
 ELSE 0 END, t.reserved_requests, 1),
            ('tokens', 'minute', t.minute_tokens_limit, w_minute, p_tokens, CASE\
 WHEN w_minute IS NULL OR t.minute_start >= w_minute THEN t.minute_tokens\
 ELSE 0 END, t.reserved_tokens, 1),
            ('cost_eur', 'minute', t.minute_cost_eur_limit, w_minute, p_cost, CASE\
 WHEN w_minute IS NULL OR t.minute_start >= w_minute THEN t.minute_cost_eur\
 ELSE 0 END, t.reserved_cost_eur, 1),
            ('requests', 'day', t.day_requests_limit, w_day, 1, CASE\
 WHEN w_day IS NULL OR t.day_start >= w_day THEN t.day_requests ELSE 0 END, t.reserved_requests, 2),
            ('tokens', 'day', t.day_tokens_limit, w_day, p_tokens, CASE\
 WHEN w_day IS NULL OR t.day_start >= w_day THEN t.day_tokens ELSE 0 END, t.reserved_tokens, 2),
            ('cost_eur', 'day', t.day_cost_eur_limit, w_day, p_cost, CASE\
 WHEN w_day IS NULL OR t.day_start >= w_day THEN t.day_cost_eur ELSE 0 END, t.reserved_cost_eur, 2),
            ('requests', 'month', t.month_requests_limit, w_month, 1, CASE\
 WHEN w_month IS NULL OR t.month_start >= w_month THEN t.month_requests\
 ELSE 0 END, t.reserved_requests, 3),
            ('tokens', 'month', t.month_tokens_limit, w_month, p_tokens, CASE\
 WHEN w_month IS NULL OR t.month_start >= w_month THEN t.month_tokens\
 ELSE 0 END, t.reserved_tokens, 3),
            ('cost_eur', 'month', t.month_cost_eur_limit, w_month, p_cost, CASE\
 WHEN w_month IS NULL OR t.month_start >= w_month THEN t.month_cost_eur\
 ELSE 0 END, t.reserved_cost_eur, 3)
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
_SETTLE = """
CREATE FUNCTION quota_settle(
    p_id uuid, p_requests numeric, p_tokens numeric, p_cost numeric,
    p_organization uuid, p_now timestamptz)
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off SET enable_bitmapscan = off
AS $$
DECLARE
    w_minute CONSTANT timestamptz := date_trunc('minute', p_now);
    w_day CONSTANT timestamptz := date_trunc('day', p_now, 'Europe/Paris');
    w_month CONSTANT timestamptz := date_trunc('month', p_now, 'Europe/Paris');
    moved integer;
BEGIN
    WITH gone AS (
        DELETE FROM public.quota_reservations AS r
        WHERE r.id = p_id AND (current_setting('plume.all_organizations', true) = 'on'\
 OR r.organization_id = ANY (string_to_array(nullif(current_setting('plume.organizations', true),\
 ''), ',')::uuid[]))
        RETURNING r.tokens, r.cost_eur, r.holds
    )
    UPDATE public.quota_ledger AS l SET
        minute_start = greatest(l.minute_start, w_minute),
            day_start = greatest(l.day_start, w_day),
            month_start = greatest(l.month_start, w_month),
            minute_requests = CASE WHEN w_minute IS NULL OR l.minute_start >= w_minute\
 THEN l.minute_requests ELSE 0 END + p_requests,
            minute_tokens = CASE WHEN w_minute IS NULL OR l.minute_start >= w_minute\
 THEN l.minute_tokens ELSE 0 END + p_tokens,
            minute_cost_eur = CASE WHEN w_minute IS NULL OR l.minute_start >= w_minute\
 THEN l.minute_cost_eur ELSE 0 END + p_cost,
            day_requests = CASE WHEN w_day IS NULL OR l.day_start >= w_day THEN l.day_requests\
 ELSE 0 END + p_requests,
            day_tokens = CASE WHEN w_day IS NULL OR l.day_start >= w_day THEN l.day_tokens\
 ELSE 0 END + p_tokens,
            day_cost_eur = CASE WHEN w_day IS NULL OR l.day_start >= w_day THEN l.day_cost_eur\
 ELSE 0 END + p_cost,
            month_requests = CASE WHEN w_month IS NULL OR l.month_start >= w_month\
 THEN l.month_requests ELSE 0 END + p_requests,
            month_tokens = CASE WHEN w_month IS NULL OR l.month_start >= w_month\
 THEN l.month_tokens ELSE 0 END + p_tokens,
            month_cost_eur = CASE WHEN w_month IS NULL OR l.month_start >= w_month\
 THEN l.month_cost_eur ELSE 0 END + p_cost,
        reserved_requests = l.reserved_requests - 1,
        reserved_tokens = l.reserved_tokens - gone.tokens,
        reserved_cost_eur = l.reserved_cost_eur - gone.cost_eur
    FROM gone
    WHERE l.organization_id = ANY (gone.holds);
    GET DIAGNOSTICS moved = ROW_COUNT;
    IF moved > 0 OR p_requests = 0 THEN
        RETURN moved > 0;
    END IF;
    IF NOT (current_setting('plume.all_organizations', true) = 'on'\
 OR p_organization = ANY (string_to_array(nullif(current_setting('plume.organizations', true), ''),\
 ',')::uuid[])) THEN
        RAISE EXCEPTION 'organisation % is outside this transaction''s scope', p_organization
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    UPDATE public.quota_ledger AS l SET
        minute_start = greatest(l.minute_start, w_minute),
            day_start = greatest(l.day_start, w_day),
            month_start = greatest(l.month_start, w_month),
            minute_requests = CASE WHEN w_minute IS NULL OR l.minute_start >= w_minute\
 THEN l.minute_requests ELSE 0 END + p_requests,
            minute_tokens = CASE WHEN w_minute IS NULL OR l.minute_start >= w_minute\
 THEN l.minute_tokens ELSE 0 END + p_tokens,
            minute_cost_eur = CASE WHEN w_minute IS NULL OR l.minute_start >= w_minute\
 THEN l.minute_cost_eur ELSE 0 END + p_cost,
            day_requests = CASE WHEN w_day IS NULL OR l.day_start >= w_day THEN l.day_requests\
 ELSE 0 END + p_requests,
            day_tokens = CASE WHEN w_day IS NULL OR l.day_start >= w_day THEN l.day_tokens\
 ELSE 0 END + p_tokens,
            day_cost_eur = CASE WHEN w_day IS NULL OR l.day_start >= w_day THEN l.day_cost_eur\
 ELSE 0 END + p_cost,
            month_requests = CASE WHEN w_month IS NULL OR l.month_start >= w_month\
 THEN l.month_requests ELSE 0 END + p_requests,
            month_tokens = CASE WHEN w_month IS NULL OR l.month_start >= w_month\
 THEN l.month_tokens ELSE 0 END + p_tokens,
            month_cost_eur = CASE WHEN w_month IS NULL OR l.month_start >= w_month\
 THEN l.month_cost_eur ELSE 0 END + p_cost
    WHERE l.organization_id = ANY (ARRAY(
    WITH RECURSIVE chain AS (
        SELECT o.id, o.parent_id FROM public.organizations AS o WHERE o.id = p_organization
        UNION ALL
        SELECT o.id, o.parent_id FROM public.organizations AS o JOIN chain ON o.id = chain.parent_id
    ) SELECT chain.id FROM chain))
      AND (l.minute_requests_limit IS NOT NULL OR l.minute_tokens_limit IS NOT NULL\
 OR l.minute_cost_eur_limit IS NOT NULL OR l.day_requests_limit IS NOT NULL\
 OR l.day_tokens_limit IS NOT NULL OR l.day_cost_eur_limit IS NOT NULL\
 OR l.month_requests_limit IS NOT NULL OR l.month_tokens_limit IS NOT NULL\
 OR l.month_cost_eur_limit IS NOT NULL);
    RETURN false;
END
$$"""

# Reservations whose request died with its process, released one by one; returns how
# many. Only the system's sweep, whose scope is every organisation, may do it.
_RELEASE_EXPIRED = """
CREATE FUNCTION quota_release_expired(p_now timestamptz, p_batch integer) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public
AS $$
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
# ledger itself. The windows of a ledger row that nothing has used yet are long past, so
# the first request rolls them to its own.
_TRIGGER_FUNCTION = """
CREATE FUNCTION quota_ledger_copy_limits() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public
AS $$
BEGIN
    -- The organisation a quota left (deleted, or moved to another): once, not twice.
    IF TG_OP = 'DELETE'
       OR (TG_OP = 'UPDATE' AND OLD.organization_id <> NEW.organization_id) THEN
    INSERT INTO public.quota_ledger AS l
        (organization_id, minute_start, day_start, month_start, minute_requests_limit,\
 minute_tokens_limit, minute_cost_eur_limit, day_requests_limit, day_tokens_limit,\
 day_cost_eur_limit, month_requests_limit, month_tokens_limit, month_cost_eur_limit)
    SELECT o.id, '1970-01-01 00:00:00+00'::timestamptz, '1970-01-01 00:00:00+00'::timestamptz,\
 '1970-01-01 00:00:00+00'::timestamptz,
           max(q."limit") FILTER (WHERE q.period = 'minute' AND q.metric = 'requests'),
           max(q."limit") FILTER (WHERE q.period = 'minute' AND q.metric = 'tokens'),
           max(q."limit") FILTER (WHERE q.period = 'minute' AND q.metric = 'cost_eur'),
           max(q."limit") FILTER (WHERE q.period = 'day' AND q.metric = 'requests'),
           max(q."limit") FILTER (WHERE q.period = 'day' AND q.metric = 'tokens'),
           max(q."limit") FILTER (WHERE q.period = 'day' AND q.metric = 'cost_eur'),
           max(q."limit") FILTER (WHERE q.period = 'month' AND q.metric = 'requests'),
           max(q."limit") FILTER (WHERE q.period = 'month' AND q.metric = 'tokens'),
           max(q."limit") FILTER (WHERE q.period = 'month' AND q.metric = 'cost_eur')
    FROM public.organizations AS o
    LEFT JOIN public.quotas AS q ON q.organization_id = o.id
    WHERE o.id = OLD.organization_id
    GROUP BY o.id
    ON CONFLICT ON CONSTRAINT quota_ledger_pkey DO UPDATE SET
        minute_requests_limit = excluded.minute_requests_limit,\
 minute_tokens_limit = excluded.minute_tokens_limit,\
 minute_cost_eur_limit = excluded.minute_cost_eur_limit,\
 day_requests_limit = excluded.day_requests_limit, day_tokens_limit = excluded.day_tokens_limit,\
 day_cost_eur_limit = excluded.day_cost_eur_limit,\
 month_requests_limit = excluded.month_requests_limit,\
 month_tokens_limit = excluded.month_tokens_limit,\
 month_cost_eur_limit = excluded.month_cost_eur_limit;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
    INSERT INTO public.quota_ledger AS l
        (organization_id, minute_start, day_start, month_start, minute_requests_limit,\
 minute_tokens_limit, minute_cost_eur_limit, day_requests_limit, day_tokens_limit,\
 day_cost_eur_limit, month_requests_limit, month_tokens_limit, month_cost_eur_limit)
    SELECT o.id, '1970-01-01 00:00:00+00'::timestamptz, '1970-01-01 00:00:00+00'::timestamptz,\
 '1970-01-01 00:00:00+00'::timestamptz,
           max(q."limit") FILTER (WHERE q.period = 'minute' AND q.metric = 'requests'),
           max(q."limit") FILTER (WHERE q.period = 'minute' AND q.metric = 'tokens'),
           max(q."limit") FILTER (WHERE q.period = 'minute' AND q.metric = 'cost_eur'),
           max(q."limit") FILTER (WHERE q.period = 'day' AND q.metric = 'requests'),
           max(q."limit") FILTER (WHERE q.period = 'day' AND q.metric = 'tokens'),
           max(q."limit") FILTER (WHERE q.period = 'day' AND q.metric = 'cost_eur'),
           max(q."limit") FILTER (WHERE q.period = 'month' AND q.metric = 'requests'),
           max(q."limit") FILTER (WHERE q.period = 'month' AND q.metric = 'tokens'),
           max(q."limit") FILTER (WHERE q.period = 'month' AND q.metric = 'cost_eur')
    FROM public.organizations AS o
    LEFT JOIN public.quotas AS q ON q.organization_id = o.id
    WHERE o.id = NEW.organization_id
    GROUP BY o.id
    ON CONFLICT ON CONSTRAINT quota_ledger_pkey DO UPDATE SET
        minute_requests_limit = excluded.minute_requests_limit,\
 minute_tokens_limit = excluded.minute_tokens_limit,\
 minute_cost_eur_limit = excluded.minute_cost_eur_limit,\
 day_requests_limit = excluded.day_requests_limit, day_tokens_limit = excluded.day_tokens_limit,\
 day_cost_eur_limit = excluded.day_cost_eur_limit,\
 month_requests_limit = excluded.month_requests_limit,\
 month_tokens_limit = excluded.month_tokens_limit,\
 month_cost_eur_limit = excluded.month_cost_eur_limit;
    END IF;
    RETURN NULL;
END
$$"""

# The limits of the organisations that already have quotas.
_COPY_EXISTING_LIMITS = """
DO $$
DECLARE
    organization uuid;
BEGIN
    FOR organization IN SELECT DISTINCT q.organization_id FROM quotas AS q LOOP
        INSERT INTO public.quota_ledger AS l
            (organization_id, minute_start, day_start, month_start,
             minute_requests_limit, minute_tokens_limit, minute_cost_eur_limit,
             day_requests_limit, day_tokens_limit, day_cost_eur_limit,
             month_requests_limit, month_tokens_limit, month_cost_eur_limit)
        SELECT o.id, '1970-01-01 00:00:00+00'::timestamptz,
               '1970-01-01 00:00:00+00'::timestamptz, '1970-01-01 00:00:00+00'::timestamptz,
               max(q."limit") FILTER (WHERE q.period = 'minute' AND q.metric = 'requests'),
               max(q."limit") FILTER (WHERE q.period = 'minute' AND q.metric = 'tokens'),
               max(q."limit") FILTER (WHERE q.period = 'minute' AND q.metric = 'cost_eur'),
               max(q."limit") FILTER (WHERE q.period = 'day' AND q.metric = 'requests'),
               max(q."limit") FILTER (WHERE q.period = 'day' AND q.metric = 'tokens'),
               max(q."limit") FILTER (WHERE q.period = 'day' AND q.metric = 'cost_eur'),
               max(q."limit") FILTER (WHERE q.period = 'month' AND q.metric = 'requests'),
               max(q."limit") FILTER (WHERE q.period = 'month' AND q.metric = 'tokens'),
               max(q."limit") FILTER (WHERE q.period = 'month' AND q.metric = 'cost_eur')
        FROM public.organizations AS o
        LEFT JOIN public.quotas AS q ON q.organization_id = o.id
        WHERE o.id = organization
        GROUP BY o.id
        ON CONFLICT ON CONSTRAINT quota_ledger_pkey DO UPDATE SET
            minute_requests_limit = excluded.minute_requests_limit,
            minute_tokens_limit = excluded.minute_tokens_limit,
            minute_cost_eur_limit = excluded.minute_cost_eur_limit,
            day_requests_limit = excluded.day_requests_limit,
            day_tokens_limit = excluded.day_tokens_limit,
            day_cost_eur_limit = excluded.day_cost_eur_limit,
            month_requests_limit = excluded.month_requests_limit,
            month_tokens_limit = excluded.month_tokens_limit,
            month_cost_eur_limit = excluded.month_cost_eur_limit;
    END LOOP;
END
$$"""

_FUNCTIONS = {
    "quota_reserve(uuid, uuid, timestamptz, numeric, numeric, timestamptz)": _RESERVE,
    "quota_settle(uuid, numeric, numeric, numeric, uuid, timestamptz)": _SETTLE,
    "quota_release_expired(timestamptz, integer)": _RELEASE_EXPIRED,
}

# What a downgrade restores: the previous migration's functions that these replace, as it
# created them (quota_extend stays as it is).
_PREVIOUS_RELEASE_EXPIRED = """
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

_PREVIOUS_RESERVE = """
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

_PREVIOUS_SETTLE = """
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

_PREVIOUS_FUNCTIONS = {
    "quota_release_expired(timestamptz, integer)": _PREVIOUS_RELEASE_EXPIRED,
    "quota_reserve(uuid, uuid, timestamptz[], numeric, numeric, timestamptz)": _PREVIOUS_RESERVE,
    "quota_settle(uuid[], numeric, numeric, numeric, uuid, timestamptz[])": _PREVIOUS_SETTLE,
}


def _create_functions(functions: dict[str, str]) -> None:
    for signature, statement in functions.items():
        op.execute(statement)
        op.execute(f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC")
        op.execute(f"GRANT EXECUTE ON FUNCTION {signature} TO plume_app")


def upgrade() -> None:
    for limit in LIMITS:
        op.add_column("quota_ledger", sa.Column(limit, AMOUNT, nullable=True))
    op.execute(_TRIGGER_FUNCTION)
    op.execute("REVOKE ALL ON FUNCTION quota_ledger_copy_limits() FROM PUBLIC")
    op.execute(
        "CREATE TRIGGER quotas_copy_limits AFTER INSERT OR UPDATE OR DELETE ON quotas"
        " FOR EACH ROW EXECUTE FUNCTION quota_ledger_copy_limits()"
    )
    op.execute(_COPY_EXISTING_LIMITS)
    # quota_extend stays as it is.
    for signature in _PREVIOUS_FUNCTIONS:
        op.execute(f"DROP FUNCTION {signature}")
    _create_functions(_FUNCTIONS)


def downgrade() -> None:
    for signature in _FUNCTIONS:
        op.execute(f"DROP FUNCTION {signature}")
    _create_functions(_PREVIOUS_FUNCTIONS)
    op.execute("DROP TRIGGER quotas_copy_limits ON quotas")
    op.execute("DROP FUNCTION quota_ledger_copy_limits()")
    for limit in LIMITS:
        op.drop_column("quota_ledger", limit)
