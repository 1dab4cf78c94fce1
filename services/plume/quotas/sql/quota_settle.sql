-- quota_settle: replace what a reservation held by what its request used (zeros release it),
-- in the windows containing p_now. True when the reservation was found and settled.
--
-- The source of the function: tests/runtime/test_sql_sources.py checks that the migrated
-- database's function is this text. A change takes a new migration holding a frozen copy.
CREATE OR REPLACE FUNCTION quota_settle(
    p_id uuid, p_requests numeric, p_tokens numeric, p_cost numeric,
    p_organization uuid, p_now timestamptz)
RETURNS boolean
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
    -- What a request used is never negative: a negative amount would lower the use of every
    -- level of the chain (the ledger's CHECK refuses a negative use, too).
    IF p_requests < 0 OR p_tokens < 0 OR p_cost < 0 THEN
        RAISE EXCEPTION 'a settlement cannot charge a negative amount'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
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
