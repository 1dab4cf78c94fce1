-- organization_update: what the operator changes of an organisation (PATCH
-- /v1/admin/organizations/{id}): its name, its status (active or suspended) and the policy
-- set at its level, as given (the caller merges a patch into the policy first). Only with
-- the system's scope (an operator admin, the command line); answers whether the
-- organisation was found. The operator organisation is never suspended.
--
-- The application role may not UPDATE an organisation's columns: a tenant's transaction
-- cannot lift its own suspension, widen its policy or move itself under another parent.
--
-- The source of the function: tests/runtime/test_sql_sources.py checks that the migrated
-- database's function is this text. A change takes a new migration holding a frozen copy.
CREATE OR REPLACE FUNCTION organization_update(
    p_id uuid, p_name text, p_status text, p_policy jsonb)
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
    SET name = p_name,
        status = p_status::public.organization_status,
        policy = p_policy,
        updated_at = now()
    WHERE o.id = p_id
      AND (o.kind <> 'operator' OR p_status = 'active');
    IF FOUND THEN
        RETURN true;
    END IF;
    IF EXISTS (SELECT FROM public.organizations AS o WHERE o.id = p_id) THEN
        RAISE EXCEPTION 'the operator organisation cannot be suspended'
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN false;
END
$$;
