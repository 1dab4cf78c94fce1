-- api_key_lookup: the API key whose secret hashes to one of p_hashes (its HMAC under the
-- current server secret first, then under each previous secret), with its organisation, the
-- organisation's parent and grandparent (the chain is at most three levels deep) and, for an
-- EPCI's tenant admin, the EPCI's communes (its scope). No row: no such key.
--
-- Authentication (plume.credentials.auth) calls it before the caller is known, with no
-- tenant context: the application role itself sees no key and no organisation then. In the
-- same call, a key found under a previous secret is re-hashed under the current one
-- (p_hashes[1], p_version), and a key that may be used records its use (last_used_at), at
-- most once a minute (plume.credentials.repository.LAST_USED_RESOLUTION_S).
--
-- Finding a key takes its hash, and the application role may not read a key's hash
-- (column privileges): knowing a hash is knowing the key, or the server secret.
--
-- The source of the function: tests/runtime/test_sql_sources.py checks that the migrated
-- database's function is this text. A change takes a new migration holding a frozen copy.
CREATE OR REPLACE FUNCTION api_key_lookup(p_hashes text[], p_version text)
RETURNS TABLE (api_key public.api_keys, organization public.organizations,
               parent public.organizations, grandparent public.organizations,
               children uuid[])
LANGUAGE plpgsql
-- Runs as its owner, plume_definer: there is no scope yet, and the application role sees
-- no key and no organisation without one. plume_definer is a role nobody logs in as, whose
-- row-level policies let it read and write every row of the tables it needs, but only as
-- itself: in the body of the functions it owns (docs/architecture.md, row-level security).
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    matched public.api_keys;
    level1 public.organizations;
    level2 public.organizations;
    level3 public.organizations;
BEGIN
    SELECT k.* INTO matched
    FROM public.api_keys AS k
    WHERE k.secret_hash = ANY (p_hashes)
    ORDER BY array_position(p_hashes, k.secret_hash)
    LIMIT 1;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    -- Found under a previous secret: re-hashed under the current one.
    IF matched.secret_hash <> p_hashes[1] THEN
        UPDATE public.api_keys AS k SET secret_hash = p_hashes[1], secret_version = p_version
        WHERE k.id = matched.id
        RETURNING k.* INTO matched;
    END IF;
    SELECT o.* INTO level1 FROM public.organizations AS o WHERE o.id = matched.organization_id;
    SELECT o.* INTO level2 FROM public.organizations AS o WHERE o.id = level1.parent_id;
    SELECT o.* INTO level3 FROM public.organizations AS o WHERE o.id = level2.parent_id;
    -- Its use, if it may be used (not revoked, not expired, no level suspended): the
    -- caller refuses the others, whose last use stays what it was.
    IF matched.revoked_at IS NULL
       AND (matched.expires_at IS NULL OR matched.expires_at > now())
       AND level1.status = 'active'
       AND (level2.id IS NULL OR level2.status = 'active')
       AND (level3.id IS NULL OR level3.status = 'active')
       AND (matched.last_used_at IS NULL OR matched.last_used_at < now() - interval '60 seconds')
    THEN
        UPDATE public.api_keys AS k SET last_used_at = now()
        WHERE k.id = matched.id
        RETURNING k.* INTO matched;
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
