-- organization_set_siret: the operator sets (or, with NULL, clears) an organisation's SIRET
-- (PATCH /v1/admin/organizations/{id}), which ProConnect's `siret` claim must match when an
-- agent of the organisation signs in (docs/identity.md). Only with the system's scope (an
-- operator admin, the command line); answers whether the organisation was found. A SIRET
-- belongs to one organisation at most (unique constraint).
--
-- The application role may not UPDATE an organisation's columns: a tenant's transaction
-- cannot choose which establishment's agents it admits.
--
-- The source of the function: tests/runtime/test_sql_sources.py checks that the migrated
-- database's function is this text. A change takes a new migration holding a frozen copy.
CREATE OR REPLACE FUNCTION organization_set_siret(p_id uuid, p_siret text)
RETURNS boolean
LANGUAGE plpgsql
-- Runs as its owner, with the system's scope only.
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF current_setting('plume.all_organizations', true) IS DISTINCT FROM 'on' THEN
        RAISE EXCEPTION 'only the operator changes an organisation'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    UPDATE public.organizations AS o
    SET siret = p_siret, updated_at = now()
    WHERE o.id = p_id;
    RETURN FOUND;
END
$$;
