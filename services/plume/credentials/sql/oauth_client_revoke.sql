-- oauth_client_revoke: revoke the OAuth2 client p_id, if the transaction's scope holds its
-- organisation; answers when it was revoked (now, or earlier if it already was), NULL if no
-- such client is in scope. Its access tokens stop working at once: every request bearing
-- one looks the client up (oauth_client_lookup).
--
-- The application role has no UPDATE on oauth_clients: a client's role and revocation
-- change only here (revocation) or not at all, and a revoked client stays revoked.
--
-- The source of the function: tests/runtime/test_sql_sources.py checks that the migrated
-- database's function is this text. A change takes a new migration holding a frozen copy.
CREATE OR REPLACE FUNCTION oauth_client_revoke(p_id uuid)
RETURNS timestamptz
LANGUAGE plpgsql
-- Runs as its owner, within the caller's scope: the owner's row-level policies (the table
-- forces row-level security) show it only the clients of the transaction's scope.
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    revoked timestamptz;
BEGIN
    SELECT c.revoked_at INTO revoked
    FROM public.oauth_clients AS c
    WHERE c.id = p_id
      AND (coalesce(current_setting('plume.all_organizations', true) = 'on', false)
           OR c.organization_id = ANY (string_to_array(
               nullif(current_setting('plume.organizations', true), ''), ',')::uuid[]))
    FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    IF revoked IS NULL THEN
        UPDATE public.oauth_clients AS c SET revoked_at = now() WHERE c.id = p_id
        RETURNING c.revoked_at INTO revoked;
    END IF;
    RETURN revoked;
END
$$;
