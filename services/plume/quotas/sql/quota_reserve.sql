-- quota_reserve: hold what a request may use against every quota of its organisation and of
-- the organisation's ancestors (EPCI, operator), in the windows containing p_now. Answers one
-- row: the quota that refused, or else the tightest one; no row when no quota applies.
--
-- The source of the function: tests/runtime/test_sql_sources.py checks that the migrated
-- database's function is this text. A change takes a new migration holding a frozen copy.
CREATE OR REPLACE FUNCTION quota_reserve(
    p_id uuid, p_organization uuid, p_now timestamptz, p_tokens numeric, p_cost numeric,
    p_expires_at timestamptz)
RETURNS TABLE (organization_id uuid, metric text, period text, quota numeric,
               window_start timestamptz, amount numeric, used numeric, reserved numeric,
               accepted boolean)
LANGUAGE plpgsql
-- Runs as its owner, plume_definer: the application role reads the ledger but cannot write
-- it, and the organisation's ancestors and their ledger rows are outside the caller's scope.
-- plume_definer's row-level policies let it through every row, only as itself: in the body
-- of the functions it owns (docs/architecture.md, row-level security).
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
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
    -- A reservation holds what a request may use: never a negative amount, which would
    -- give back quota nobody used.
    IF p_tokens < 0 OR p_cost < 0 THEN
        RAISE EXCEPTION 'a reservation cannot hold a negative amount'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
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
