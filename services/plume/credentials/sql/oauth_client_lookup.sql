-- oauth_client_lookup: the OAuth2 client p_client_id (its public identifier, `plc_…`), with
-- its organisation, the organisation's parent and grandparent (the chain is at most three
-- levels deep) and, for an EPCI's tenant admin, the EPCI's communes (its scope). No row: no
-- such client, or p_hashes does not hold its secret's hash.
--
-- Two callers, before the caller is known and with no tenant context (the application role
-- sees no client and no organisation then):
-- * the token endpoint (plume.credentials.oauth) authenticates the client: p_hashes holds
--   the HMAC of the secret it sent under the current server secret first, then under each
--   previous one; a client found under a previous secret is re-hashed under the current
--   one (p_hashes[1], p_version);
-- * the verification of an access token (plume.credentials.tokens), whose signature Plume
--   checked: p_hashes is NULL, the client is looked up by its identifier alone, on every
--   request, so that a revoked client's tokens stop working at once.
-- A client that may be used records its use (last_used_at), at most once a minute.
--
-- The application role may not read a client's hash (column privileges): knowing a hash is
-- knowing the secret, or the server secret.
--
-- The source of the function: tests/runtime/test_sql_sources.py checks that the migrated
-- database's function is this text. A change takes a new migration holding a frozen copy.
CREATE OR REPLACE FUNCTION oauth_client_lookup(p_client_id text, p_hashes text[], p_version text)
RETURNS TABLE (oauth_client public.oauth_clients, organization public.organizations,
               parent public.organizations, grandparent public.organizations,
               children uuid[])
LANGUAGE plpgsql
-- Runs as its owner, plume_definer, as api_key_lookup does (docs/architecture.md,
-- row-level security).
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    matched public.oauth_clients;
    level1 public.organizations;
    level2 public.organizations;
    level3 public.organizations;
BEGIN
    SELECT c.* INTO matched
    FROM public.oauth_clients AS c
    WHERE c.client_id = p_client_id
      AND (p_hashes IS NULL OR c.secret_hash = ANY (p_hashes));
    IF NOT FOUND THEN
        RETURN;
    END IF;
    -- Found under a previous secret: re-hashed under the current one.
    IF p_hashes IS NOT NULL AND matched.secret_hash <> p_hashes[1] THEN
        UPDATE public.oauth_clients AS c SET secret_hash = p_hashes[1], secret_version = p_version
        WHERE c.id = matched.id
        RETURNING c.* INTO matched;
    END IF;
    SELECT o.* INTO level1 FROM public.organizations AS o WHERE o.id = matched.organization_id;
    SELECT o.* INTO level2 FROM public.organizations AS o WHERE o.id = level1.parent_id;
    SELECT o.* INTO level3 FROM public.organizations AS o WHERE o.id = level2.parent_id;
    -- Its use, if it may be used (not revoked, no level suspended): the caller refuses the
    -- others, whose last use stays what it was.
    IF matched.revoked_at IS NULL
       AND level1.status = 'active'
       AND (level2.id IS NULL OR level2.status = 'active')
       AND (level3.id IS NULL OR level3.status = 'active')
       AND (matched.last_used_at IS NULL OR matched.last_used_at < now() - interval '60 seconds')
    THEN
        UPDATE public.oauth_clients AS c SET last_used_at = now()
        WHERE c.id = matched.id
        RETURNING c.* INTO matched;
    END IF;
    RETURN QUERY
    SELECT matched, level1,
           CASE WHEN level2.id IS NULL THEN NULL ELSE level2 END,
           CASE WHEN level3.id IS NULL THEN NULL ELSE level3 END,
           CASE WHEN matched.role = 'tenant_admin' AND level1.kind = 'epci' THEN
               ARRAY(SELECT c.id FROM public.organizations AS c
                     WHERE c.parent_id = level1.id ORDER BY c.id)
           END;
END
$$;
