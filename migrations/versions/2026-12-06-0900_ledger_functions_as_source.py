"""The quota ledger's functions as readable source: services/plume/quotas/sql/.

The functions that migrations 2026-11-27-1820 and -2040 created, rewritten by hand for a
reader, one file per function, with comments that explain their rules (the comments inside
a function's body are kept by PostgreSQL with it). Their behaviour is unchanged: only
whitespace and comments differ, and each function keeps its signature, its options and its
privileges (CREATE OR REPLACE keeps the owner and the grants, restated below all the same).

This revision holds a frozen copy of the five files as they were when it was written; it
never reads them. A later change to a file takes a later migration with its own copy
(tests/test_sql_sources.py fails until the database's function is the file again). The
downgrade restores the functions' previous text, as 1820 (quota_extend) and 2040 (the
others) created them.

Revision ID: 41f0d2dc9d40
Revises: 9b51e3a7c2d4
Create Date: 2026-12-06 09:00:00.000000+00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "41f0d2dc9d40"
down_revision: str | None = "9b51e3a7c2d4"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# services/plume/quotas/sql/quota_reserve.sql
QUOTA_RESERVE = """\
-- quota_reserve: hold what a request may use against every quota of its organisation and of
-- the organisation's ancestors (EPCI, operator), in the windows containing p_now. Answers one
-- row: the quota that refused, or else the tightest one; no row when no quota applies.
--
-- The source of the function: tests/test_sql_sources.py checks that the migrated database's
-- function is this text. A change takes a new migration holding a frozen copy of it.
CREATE OR REPLACE FUNCTION quota_reserve(
    p_id uuid, p_organization uuid, p_now timestamptz, p_tokens numeric, p_cost numeric,
    p_expires_at timestamptz)
RETURNS TABLE (organization_id uuid, metric text, period text, quota numeric,
               window_start timestamptz, amount numeric, used numeric, reserved numeric,
               accepted boolean)
LANGUAGE plpgsql
-- Runs as its owner: the application role reads the ledger but cannot write it.
SECURITY DEFINER
SET search_path = pg_catalog, public
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
SET enable_bitmapscan = off
AS $$
-- What the options above are for:
-- * search_path: pinned, and every table schema-qualified, as befits SECURITY DEFINER.
-- * plan_cache_mode: a generic plan, planned once per connection. Re-planning these statements
--   on every call (what PostgreSQL would choose by itself here) costs more than running them.
-- * enable_seqscan, enable_bitmapscan: the ledger is read through its primary key only, whose
--   index scan visits `organization_id = ANY (...)` in ascending order. Every statement that
--   moves several ledger rows (here and in quota_settle) thus locks them in that one order,
--   and reservations and settlements never deadlock. A sequential or bitmap scan would lock
--   the rows in the order of their places on disk instead.
DECLARE
    -- The windows containing p_now. A minute is the same everywhere; a day and a month are
    -- calendar periods in Europe/Paris, daylight-saving changes included (a day of 23 or 25
    -- hours). plume.quotas.periods computes the same windows in Python, and
    -- tests/test_calendar_agreement.py checks that both agree.
    w_minute CONSTANT timestamptz := date_trunc('minute', p_now);
    w_day CONSTANT timestamptz := date_trunc('day', p_now, 'Europe/Paris');
    w_month CONSTANT timestamptz := date_trunc('month', p_now, 'Europe/Paris');
BEGIN
    -- The scope check. Row-level security does not restrict this function's owner, so it
    -- checks what the policies would: the organisation it reserves for must be in the
    -- transaction's scope (the settings plume.db.enter_tenant_context writes).
    IF NOT (current_setting('plume.all_organizations', true) = 'on'
            OR p_organization = ANY (string_to_array(
                nullif(current_setting('plume.organizations', true), ''), ',')::uuid[])) THEN
        RAISE EXCEPTION 'organisation % is outside this transaction''s scope', p_organization
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN QUERY
    -- The organisation's chain: itself, its EPCI, the operator. Read from the organisation
    -- tree here, never from the caller.
    WITH RECURSIVE chain AS (
        SELECT o.id, o.parent_id FROM public.organizations AS o WHERE o.id = p_organization
        UNION ALL
        SELECT o.id, o.parent_id FROM public.organizations AS o JOIN chain ON o.id = chain.parent_id
    ),
    -- Every level of the chain with at least one quota (a limit that is not NULL; the
    -- trigger quota_ledger_copy_limits keeps the limits in the row): its ledger row is
    -- locked, in organisation order, and its holds raised by the request's amounts, whatever
    -- they reach. The row is the one as it stands once locked, a concurrent request's change
    -- included. Whether the request fits is read from the rows this leaves (answer, below):
    -- when it does not, the caller rolls the transaction back, and the row locks have kept
    -- every other request from seeing these holds meanwhile.
    taken AS (
        UPDATE public.quota_ledger AS l SET
            reserved_requests = l.reserved_requests + 1,
            reserved_tokens = l.reserved_tokens + p_tokens,
            reserved_cost_eur = l.reserved_cost_eur + p_cost
        WHERE l.organization_id = ANY (ARRAY(SELECT chain.id FROM chain))
          AND (l.minute_requests_limit IS NOT NULL OR l.minute_tokens_limit IS NOT NULL
               OR l.minute_cost_eur_limit IS NOT NULL OR l.day_requests_limit IS NOT NULL
               OR l.day_tokens_limit IS NOT NULL OR l.day_cost_eur_limit IS NOT NULL
               OR l.month_requests_limit IS NOT NULL OR l.month_tokens_limit IS NOT NULL
               OR l.month_cost_eur_limit IS NOT NULL)
        RETURNING l.*
    ),
    -- The reservation, with the levels it holds (in organisation order), for quota_settle;
    -- none when no level has a quota.
    held AS (
        INSERT INTO public.quota_reservations
            (id, organization_id, tokens, cost_eur, holds, expires_at)
        SELECT p_id, p_organization, p_tokens, p_cost,
               array_agg(taken.organization_id ORDER BY taken.organization_id), p_expires_at
        FROM taken
        HAVING count(*) > 0
    ),
    -- One row per quota of a level that took the reservation: its limit, its window, the
    -- request's amount of its metric, the window's use and what requests in flight hold,
    -- this one included. A window's use counts only while the row is in the window of p_now:
    -- a ledger row whose window has rolled since its last settlement has used nothing yet in
    -- this one (the row's windows themselves roll forward when a request is settled).
    -- rank orders the periods: minute 1, day 2, month 3. A quota fits when its use and
    -- every hold, this request's included, stay within its limit.
    answer AS (
        SELECT t.organization_id, v.metric, v.period, v.quota, v.window_start, v.amount,
               v.used, v.reserved, v.rank, v.used + v.reserved <= v.quota AS fits
        FROM taken AS t,
        LATERAL (VALUES
            ('requests', 'minute', t.minute_requests_limit, w_minute, 1,
             CASE WHEN w_minute IS NULL OR t.minute_start >= w_minute
                  THEN t.minute_requests ELSE 0 END,
             t.reserved_requests, 1),
            ('tokens', 'minute', t.minute_tokens_limit, w_minute, p_tokens,
             CASE WHEN w_minute IS NULL OR t.minute_start >= w_minute
                  THEN t.minute_tokens ELSE 0 END,
             t.reserved_tokens, 1),
            ('cost_eur', 'minute', t.minute_cost_eur_limit, w_minute, p_cost,
             CASE WHEN w_minute IS NULL OR t.minute_start >= w_minute
                  THEN t.minute_cost_eur ELSE 0 END,
             t.reserved_cost_eur, 1),
            ('requests', 'day', t.day_requests_limit, w_day, 1,
             CASE WHEN w_day IS NULL OR t.day_start >= w_day
                  THEN t.day_requests ELSE 0 END,
             t.reserved_requests, 2),
            ('tokens', 'day', t.day_tokens_limit, w_day, p_tokens,
             CASE WHEN w_day IS NULL OR t.day_start >= w_day
                  THEN t.day_tokens ELSE 0 END,
             t.reserved_tokens, 2),
            ('cost_eur', 'day', t.day_cost_eur_limit, w_day, p_cost,
             CASE WHEN w_day IS NULL OR t.day_start >= w_day
                  THEN t.day_cost_eur ELSE 0 END,
             t.reserved_cost_eur, 2),
            ('requests', 'month', t.month_requests_limit, w_month, 1,
             CASE WHEN w_month IS NULL OR t.month_start >= w_month
                  THEN t.month_requests ELSE 0 END,
             t.reserved_requests, 3),
            ('tokens', 'month', t.month_tokens_limit, w_month, p_tokens,
             CASE WHEN w_month IS NULL OR t.month_start >= w_month
                  THEN t.month_tokens ELSE 0 END,
             t.reserved_tokens, 3),
            ('cost_eur', 'month', t.month_cost_eur_limit, w_month, p_cost,
             CASE WHEN w_month IS NULL OR t.month_start >= w_month
                  THEN t.month_cost_eur ELSE 0 END,
             t.reserved_cost_eur, 3)
        ) AS v(metric, period, quota, window_start, amount, used, reserved, rank)
        WHERE v.quota IS NOT NULL
    )
    -- The answer, one row:
    -- * if a quota does not fit (they come first: false sorts before true), the request is
    --   refused, wholly, and the answer is the refusing quota that stays shut the longest:
    --   a month's over a day's over a minute's (the highest rank first). Its reserved is
    --   given as it stood before this request, which the caller rolls back.
    -- * else the request is accepted, and the answer is the tightest quota: the least
    --   fraction of its limit remaining after the reservation (for RateLimit-* headers);
    --   between equals, the shortest period.
    SELECT q.organization_id, q.metric, q.period, q.quota, q.window_start, q.amount, q.used,
           q.reserved - CASE WHEN q.fits THEN 0 ELSE q.amount END, q.fits
    FROM answer AS q
    ORDER BY q.fits,
             CASE WHEN NOT q.fits THEN -q.rank END,
             (q.quota - q.used - q.reserved) / q.quota,
             q.rank
    LIMIT 1;
END
$$;
"""

# services/plume/quotas/sql/quota_settle.sql
QUOTA_SETTLE = """\
-- quota_settle: replace what a reservation held by what its request used (zeros release it),
-- in the windows containing p_now. True when the reservation was found and settled.
--
-- The source of the function: tests/test_sql_sources.py checks that the migrated database's
-- function is this text. A change takes a new migration holding a frozen copy of it.
CREATE OR REPLACE FUNCTION quota_settle(
    p_id uuid, p_requests numeric, p_tokens numeric, p_cost numeric,
    p_organization uuid, p_now timestamptz)
RETURNS boolean
LANGUAGE plpgsql
-- Runs as its owner: the application role reads the ledger but cannot write it.
SECURITY DEFINER
SET search_path = pg_catalog, public
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
SET enable_bitmapscan = off
AS $$
-- What the options above are for (as in quota_reserve):
-- * search_path: pinned, and every table schema-qualified, as befits SECURITY DEFINER.
-- * plan_cache_mode: a generic plan, planned once per connection, costs less than
--   re-planning on every call.
-- * enable_seqscan, enable_bitmapscan: the ledger is read through its primary key only, whose
--   index scan visits `organization_id = ANY (...)` in ascending order, so the ledger rows of
--   a chain are locked in organisation order, as quota_reserve locks them: reservations and
--   settlements never deadlock.
--
-- A settlement charges p_requests, p_tokens and p_cost to every window (minute, day, month)
-- of each level, and a window that has rolled since the row's last move starts from zero.
-- Without a time (p_now NULL, as the sweep releases), the windows stay as they stand:
-- greatest() ignores NULL.
DECLARE
    -- The windows containing p_now: a minute; a day and a month in Europe/Paris, as in
    -- quota_reserve (and plume.quotas.periods).
    w_minute CONSTANT timestamptz := date_trunc('minute', p_now);
    w_day CONSTANT timestamptz := date_trunc('day', p_now, 'Europe/Paris');
    w_month CONSTANT timestamptz := date_trunc('month', p_now, 'Europe/Paris');
    moved integer;
BEGIN
    -- The reservation, gone for good: a reservation already settled or swept is not found,
    -- so nothing is settled twice. Only a reservation of an organisation in the
    -- transaction's scope is found (the scope check, as the row-level policies would).
    -- Each level it holds gives back the request's holds and takes what was used, in the
    -- one statement, its rows locked in organisation order.
    WITH gone AS (
        DELETE FROM public.quota_reservations AS r
        WHERE r.id = p_id
          AND (current_setting('plume.all_organizations', true) = 'on'
               OR r.organization_id = ANY (string_to_array(
                   nullif(current_setting('plume.organizations', true), ''), ',')::uuid[]))
        RETURNING r.tokens, r.cost_eur, r.holds
    )
    UPDATE public.quota_ledger AS l SET
        minute_start = greatest(l.minute_start, w_minute),
        day_start = greatest(l.day_start, w_day),
        month_start = greatest(l.month_start, w_month),
        minute_requests = CASE WHEN w_minute IS NULL OR l.minute_start >= w_minute
                               THEN l.minute_requests ELSE 0 END + p_requests,
        minute_tokens = CASE WHEN w_minute IS NULL OR l.minute_start >= w_minute
                             THEN l.minute_tokens ELSE 0 END + p_tokens,
        minute_cost_eur = CASE WHEN w_minute IS NULL OR l.minute_start >= w_minute
                               THEN l.minute_cost_eur ELSE 0 END + p_cost,
        day_requests = CASE WHEN w_day IS NULL OR l.day_start >= w_day
                            THEN l.day_requests ELSE 0 END + p_requests,
        day_tokens = CASE WHEN w_day IS NULL OR l.day_start >= w_day
                          THEN l.day_tokens ELSE 0 END + p_tokens,
        day_cost_eur = CASE WHEN w_day IS NULL OR l.day_start >= w_day
                            THEN l.day_cost_eur ELSE 0 END + p_cost,
        month_requests = CASE WHEN w_month IS NULL OR l.month_start >= w_month
                              THEN l.month_requests ELSE 0 END + p_requests,
        month_tokens = CASE WHEN w_month IS NULL OR l.month_start >= w_month
                            THEN l.month_tokens ELSE 0 END + p_tokens,
        month_cost_eur = CASE WHEN w_month IS NULL OR l.month_start >= w_month
                              THEN l.month_cost_eur ELSE 0 END + p_cost,
        reserved_requests = l.reserved_requests - 1,
        reserved_tokens = l.reserved_tokens - gone.tokens,
        reserved_cost_eur = l.reserved_cost_eur - gone.cost_eur
    FROM gone
    WHERE l.organization_id = ANY (gone.holds);
    GET DIAGNOSTICS moved = ROW_COUNT;
    -- Settled; or nothing to charge (a release, a request not charged) and nothing held.
    IF moved > 0 OR p_requests = 0 THEN
        RETURN moved > 0;
    END IF;
    -- A charged request whose reservation is gone (swept after its TTL, or lost with the
    -- asynchronous commit of its reservation) is charged all the same, to its chain as it
    -- stands now: it has happened. The organisation must be in the transaction's scope.
    IF NOT (current_setting('plume.all_organizations', true) = 'on'
            OR p_organization = ANY (string_to_array(
                nullif(current_setting('plume.organizations', true), ''), ',')::uuid[])) THEN
        RAISE EXCEPTION 'organisation % is outside this transaction''s scope', p_organization
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    -- Every level of the chain (itself, its EPCI, the operator) that has a quota, its row
    -- locked in organisation order.
    UPDATE public.quota_ledger AS l SET
        minute_start = greatest(l.minute_start, w_minute),
        day_start = greatest(l.day_start, w_day),
        month_start = greatest(l.month_start, w_month),
        minute_requests = CASE WHEN w_minute IS NULL OR l.minute_start >= w_minute
                               THEN l.minute_requests ELSE 0 END + p_requests,
        minute_tokens = CASE WHEN w_minute IS NULL OR l.minute_start >= w_minute
                             THEN l.minute_tokens ELSE 0 END + p_tokens,
        minute_cost_eur = CASE WHEN w_minute IS NULL OR l.minute_start >= w_minute
                               THEN l.minute_cost_eur ELSE 0 END + p_cost,
        day_requests = CASE WHEN w_day IS NULL OR l.day_start >= w_day
                            THEN l.day_requests ELSE 0 END + p_requests,
        day_tokens = CASE WHEN w_day IS NULL OR l.day_start >= w_day
                          THEN l.day_tokens ELSE 0 END + p_tokens,
        day_cost_eur = CASE WHEN w_day IS NULL OR l.day_start >= w_day
                            THEN l.day_cost_eur ELSE 0 END + p_cost,
        month_requests = CASE WHEN w_month IS NULL OR l.month_start >= w_month
                              THEN l.month_requests ELSE 0 END + p_requests,
        month_tokens = CASE WHEN w_month IS NULL OR l.month_start >= w_month
                            THEN l.month_tokens ELSE 0 END + p_tokens,
        month_cost_eur = CASE WHEN w_month IS NULL OR l.month_start >= w_month
                              THEN l.month_cost_eur ELSE 0 END + p_cost
    WHERE l.organization_id = ANY (ARRAY(
        WITH RECURSIVE chain AS (
            SELECT o.id, o.parent_id FROM public.organizations AS o
            WHERE o.id = p_organization
            UNION ALL
            SELECT o.id, o.parent_id FROM public.organizations AS o
            JOIN chain ON o.id = chain.parent_id
        ) SELECT chain.id FROM chain))
      AND (l.minute_requests_limit IS NOT NULL OR l.minute_tokens_limit IS NOT NULL
           OR l.minute_cost_eur_limit IS NOT NULL OR l.day_requests_limit IS NOT NULL
           OR l.day_tokens_limit IS NOT NULL OR l.day_cost_eur_limit IS NOT NULL
           OR l.month_requests_limit IS NOT NULL OR l.month_tokens_limit IS NOT NULL
           OR l.month_cost_eur_limit IS NOT NULL);
    RETURN false;
END
$$;
"""

# services/plume/quotas/sql/quota_extend.sql
QUOTA_EXTEND = """\
-- quota_extend: a synthese accepted as a job keeps its reservation until the job ends; this
-- moves the reservation's expiry, so that the sweep leaves it alone meanwhile.
--
-- The source of the function: tests/test_sql_sources.py checks that the migrated database's
-- function is this text. A change takes a new migration holding a frozen copy of it.
CREATE OR REPLACE FUNCTION quota_extend(p_id uuid, p_expires_at timestamptz)
RETURNS void
LANGUAGE plpgsql
-- Runs as its owner: the application role cannot write reservations.
SECURITY DEFINER
SET search_path = pg_catalog, public
SET plan_cache_mode = force_generic_plan
AS $$
-- search_path pinned and tables schema-qualified, as befits SECURITY DEFINER; a generic
-- plan, planned once per connection.
BEGIN
    -- The scope check: only a reservation of an organisation in the transaction's scope is
    -- extended (another one is left as it is, silently), as the row-level policies would.
    UPDATE public.quota_reservations AS r SET expires_at = p_expires_at
    WHERE r.id = p_id
      AND (current_setting('plume.all_organizations', true) = 'on'
           OR r.organization_id = ANY (string_to_array(
               nullif(current_setting('plume.organizations', true), ''), ',')::uuid[]));
END
$$;
"""

# services/plume/quotas/sql/quota_release_expired.sql
QUOTA_RELEASE_EXPIRED = """\
-- quota_release_expired: release, one by one, at most p_batch reservations that expired
-- before p_now (their request died with its process); returns how many. The sweeper
-- (plume.quotas.sweeper) calls it with the system's scope.
--
-- The source of the function: tests/test_sql_sources.py checks that the migrated database's
-- function is this text. A change takes a new migration holding a frozen copy of it.
CREATE OR REPLACE FUNCTION quota_release_expired(p_now timestamptz, p_batch integer)
RETURNS integer
LANGUAGE plpgsql
-- Runs as its owner: the application role cannot write reservations or the ledger.
SECURITY DEFINER
SET search_path = pg_catalog, public
AS $$
DECLARE
    due record;
    released integer := 0;
BEGIN
    -- The scope check: only the system's sweep, whose scope is every organisation, may
    -- release reservations that are not its own.
    IF current_setting('plume.all_organizations', true) IS DISTINCT FROM 'on' THEN
        RAISE EXCEPTION 'only the system sweeps reservations'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    -- The oldest first. SKIP LOCKED: a reservation being settled right now, or taken by the
    -- sweep of another process, is left to it.
    FOR due IN
        SELECT r.id FROM public.quota_reservations AS r
        WHERE r.expires_at < p_now
        ORDER BY r.expires_at
        LIMIT p_batch
        FOR UPDATE SKIP LOCKED
    LOOP
        -- A release: nothing used, no time (the windows stay as they stand); its holds are
        -- given back. Should the request settle later after all, quota_settle finds no
        -- reservation and charges its chain all the same.
        PERFORM public.quota_settle(due.id, 0, 0, 0, NULL, NULL);
        released := released + 1;
    END LOOP;
    RETURN released;
END
$$;
"""

# services/plume/quotas/sql/quota_ledger_copy_limits.sql
QUOTA_LEDGER_COPY_LIMITS = """\
-- quota_ledger_copy_limits: the trigger (quotas_copy_limits, AFTER INSERT OR UPDATE OR DELETE
-- ON quotas, FOR EACH ROW) that copies an organisation's limits into its ledger row whenever
-- one of its quotas changes, creating the row if need be.
--
-- The source of the function: tests/test_sql_sources.py checks that the migrated database's
-- function is this text. A change takes a new migration holding a frozen copy of it.
CREATE OR REPLACE FUNCTION quota_ledger_copy_limits()
RETURNS trigger
LANGUAGE plpgsql
-- Runs as its owner: the application role, which may write quotas (under their row-level
-- policies), cannot write the ledger itself.
SECURITY DEFINER
SET search_path = pg_catalog, public
AS $$
-- Each ledger row holds its organisation's limits, one column per period and metric (NULL:
-- no such quota), so that quota_reserve compares columns with columns instead of reading
-- and matching the quotas on every request. The limits are recomputed from all of the
-- organisation's quotas, not patched from the row that changed. A row created here has
-- windows long past (1970): the first request's settlement rolls them to its own.
BEGIN
    -- The organisation a quota left (deleted, or moved to another): once, not twice.
    IF TG_OP = 'DELETE'
       OR (TG_OP = 'UPDATE' AND OLD.organization_id <> NEW.organization_id) THEN
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
        WHERE o.id = OLD.organization_id
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
    END IF;
    -- The organisation a quota belongs to now (inserted or updated).
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
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
        WHERE o.id = NEW.organization_id
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
    END IF;
    -- An AFTER trigger: the value returned is ignored.
    RETURN NULL;
END
$$;
"""

# Each function with the roles that may execute it (EXECUTE is revoked from PUBLIC): the
# application role calls the ledger's functions; only the trigger calls the last one.
_FUNCTIONS = [
    ("quota_reserve(uuid, uuid, timestamptz, numeric, numeric, timestamptz)", QUOTA_RESERVE),
    ("quota_settle(uuid, numeric, numeric, numeric, uuid, timestamptz)", QUOTA_SETTLE),
    ("quota_extend(uuid, timestamptz)", QUOTA_EXTEND),
    ("quota_release_expired(timestamptz, integer)", QUOTA_RELEASE_EXPIRED),
    ("quota_ledger_copy_limits()", QUOTA_LEDGER_COPY_LIMITS),
]
_CALLED_BY_THE_APPLICATION = {signature for signature, _ in _FUNCTIONS[:4]}

# What the downgrade restores: the functions' bodies (between the $$) as 2040 (and 1820, for
# quota_extend) created them, byte for byte. Inside these strings, a backslash at the end of
# a line joins it to the next one (Python drops both): that text has long lines.
_PREVIOUS_RESERVE = """
CREATE OR REPLACE FUNCTION quota_reserve(
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

_PREVIOUS_SETTLE = """
CREATE OR REPLACE FUNCTION quota_settle(
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

_PREVIOUS_EXTEND = """
CREATE OR REPLACE FUNCTION quota_extend(p_id uuid, p_expires_at timestamptz) RETURNS void
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

_PREVIOUS_RELEASE_EXPIRED = """
CREATE OR REPLACE FUNCTION quota_release_expired(p_now timestamptz, p_batch integer)
RETURNS integer
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

_PREVIOUS_COPY_LIMITS = """
CREATE OR REPLACE FUNCTION quota_ledger_copy_limits() RETURNS trigger
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

_PREVIOUS_FUNCTIONS = [
    ("quota_reserve(uuid, uuid, timestamptz, numeric, numeric, timestamptz)", _PREVIOUS_RESERVE),
    ("quota_settle(uuid, numeric, numeric, numeric, uuid, timestamptz)", _PREVIOUS_SETTLE),
    ("quota_extend(uuid, timestamptz)", _PREVIOUS_EXTEND),
    ("quota_release_expired(timestamptz, integer)", _PREVIOUS_RELEASE_EXPIRED),
    ("quota_ledger_copy_limits()", _PREVIOUS_COPY_LIMITS),
]


def _replace_functions(functions: list[tuple[str, str]]) -> None:
    for signature, statement in functions:
        op.execute(statement)
        op.execute(f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC")
        if signature in _CALLED_BY_THE_APPLICATION:
            op.execute(f"GRANT EXECUTE ON FUNCTION {signature} TO plume_app")


def upgrade() -> None:
    _replace_functions(_FUNCTIONS)


def downgrade() -> None:
    _replace_functions(_PREVIOUS_FUNCTIONS)
