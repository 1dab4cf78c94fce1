-- api_key_revoke: revoke the key p_id, if the transaction's scope holds its organisation;
-- answers when it was revoked (now, or earlier if it already was), NULL if no such key is
-- in scope. An operator_admin key is revoked only with the system's scope (an operator
-- admin, the command line): a tenant admin, even the operator organisation's, may not.
--
-- The application role has no UPDATE on api_keys: a key's role, expiry and revocation
-- change only here (revocation) or not at all, and a revoked key stays revoked.
--
-- The source of the function: tests/runtime/test_sql_sources.py checks that the migrated
-- database's function is this text. A change takes a new migration holding a frozen copy.
CREATE OR REPLACE FUNCTION api_key_revoke(p_id uuid)
RETURNS timestamptz
LANGUAGE plpgsql
-- Runs as its owner, within the caller's scope: the owner's row-level policies (the tables
-- force row-level security) show it only the keys of the transaction's scope.
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    everything CONSTANT boolean :=
        coalesce(current_setting('plume.all_organizations', true) = 'on', false);
    key_role text;
    revoked timestamptz;
BEGIN
    SELECT k.role::text, k.revoked_at INTO key_role, revoked
    FROM public.api_keys AS k
    WHERE k.id = p_id
      AND (everything
           OR k.organization_id = ANY (string_to_array(
               nullif(current_setting('plume.organizations', true), ''), ',')::uuid[]))
    FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    IF key_role = 'operator_admin' AND NOT everything THEN
        RAISE EXCEPTION 'only an operator admin revokes an operator_admin key'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF revoked IS NULL THEN
        UPDATE public.api_keys AS k SET revoked_at = now() WHERE k.id = p_id
        RETURNING k.revoked_at INTO revoked;
    END IF;
    RETURN revoked;
END
$$;
