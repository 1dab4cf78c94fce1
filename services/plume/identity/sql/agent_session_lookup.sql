-- agent_session_lookup: the signed-in agent's session whose opaque token hashes to p_hash
-- (its HMAC under the server secret), with its agent, the agent's organisation, the
-- organisation's parent and grandparent (the chain is at most three levels deep) and, for
-- an EPCI's tenant admin, the EPCI's communes (its scope). No row: no such session.
--
-- Authentication (plume.identity.sessions) calls it on every request that carries the
-- session cookie, before the caller is known, with no tenant context: the application role
-- sees no session, no agent and no organisation then, and never reads a session's hash
-- (column privileges). Nothing is cached: a revoked or expired session, a suspended agent
-- or a suspended organisation (or ancestor) is refused on the next request. In the same
-- call, a session that may be used records its use (last_seen_at, which its idle expiry
-- counts from), at most once a minute.
--
-- The source of the function: tests/runtime/test_sql_sources.py checks that the migrated
-- database's function is this text. A change takes a new migration holding a frozen copy.
CREATE OR REPLACE FUNCTION agent_session_lookup(p_hash text, p_idle_seconds integer)
RETURNS TABLE (agent_session public.agent_sessions, agent public.agents,
               organization public.organizations, parent public.organizations,
               grandparent public.organizations, children uuid[])
LANGUAGE plpgsql
-- Runs as its owner, plume_definer, as api_key_lookup does (docs/architecture.md,
-- row-level security).
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    matched public.agent_sessions;
    found_agent public.agents;
    level1 public.organizations;
    level2 public.organizations;
    level3 public.organizations;
BEGIN
    SELECT s.* INTO matched FROM public.agent_sessions AS s WHERE s.token_hash = p_hash;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    SELECT a.* INTO found_agent FROM public.agents AS a WHERE a.id = matched.agent_id;
    SELECT o.* INTO level1 FROM public.organizations AS o WHERE o.id = found_agent.organization_id;
    SELECT o.* INTO level2 FROM public.organizations AS o WHERE o.id = level1.parent_id;
    SELECT o.* INTO level3 FROM public.organizations AS o WHERE o.id = level2.parent_id;
    -- Its use, if it may be used: the caller refuses the others, whose last use stays.
    IF matched.revoked_at IS NULL
       AND matched.expires_at > now()
       AND matched.last_seen_at > now() - make_interval(secs => p_idle_seconds)
       AND found_agent.status = 'active'
       AND level1.status = 'active'
       AND (level2.id IS NULL OR level2.status = 'active')
       AND (level3.id IS NULL OR level3.status = 'active')
       AND matched.last_seen_at < now() - interval '60 seconds'
    THEN
        UPDATE public.agent_sessions AS s SET last_seen_at = now()
        WHERE s.id = matched.id
        RETURNING s.* INTO matched;
    END IF;
    RETURN QUERY
    SELECT matched, found_agent, level1,
           CASE WHEN level2.id IS NULL THEN NULL ELSE level2 END,
           CASE WHEN level3.id IS NULL THEN NULL ELSE level3 END,
           CASE WHEN found_agent.role = 'tenant_admin' AND level1.kind = 'epci' THEN
               ARRAY(SELECT c.id FROM public.organizations AS c
                     WHERE c.parent_id = level1.id ORDER BY c.id)
           END;
END
$$;
