-- quota_extend: a synthese accepted as a job keeps its reservation until the job ends; this
-- moves the reservation's expiry, so that the sweep leaves it alone meanwhile.
--
-- The source of the function: tests/runtime/test_sql_sources.py checks that the migrated
-- database's function is this text. A change takes a new migration holding a frozen copy.
CREATE OR REPLACE FUNCTION quota_extend(p_id uuid, p_expires_at timestamptz)
RETURNS void
LANGUAGE plpgsql
-- Runs as its owner: the application role cannot write reservations.
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
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
