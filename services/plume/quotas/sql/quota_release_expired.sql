-- quota_release_expired: release, one by one, at most p_batch reservations that expired
-- before p_now (their request died with its process); returns how many. The sweeper
-- (plume.quotas.sweeper) calls it with the system's scope.
--
-- The source of the function: tests/runtime/test_sql_sources.py checks that the migrated
-- database's function is this text. A change takes a new migration holding a frozen copy.
CREATE OR REPLACE FUNCTION quota_release_expired(p_now timestamptz, p_batch integer)
RETURNS integer
LANGUAGE plpgsql
-- Runs as its owner: the application role cannot write reservations or the ledger.
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
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
