-- quota_ledger_copy_limits: the trigger (quotas_copy_limits, AFTER INSERT OR UPDATE OR DELETE
-- ON quotas, FOR EACH ROW) that copies an organisation's limits into its ledger row whenever
-- one of its quotas changes, creating the row if need be.
--
-- The source of the function: tests/runtime/test_sql_sources.py checks that the migrated
-- database's function is this text. A change takes a new migration holding a frozen copy.
CREATE OR REPLACE FUNCTION quota_ledger_copy_limits()
RETURNS trigger
LANGUAGE plpgsql
-- Runs as its owner: the application role, which may write quotas (under their row-level
-- policies), cannot write the ledger itself. It touches only the organisation whose quota
-- changed, which the writer's scope holds: the owner's row-level policies (the tables force
-- row-level security) let it through on that scope alone.
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
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
