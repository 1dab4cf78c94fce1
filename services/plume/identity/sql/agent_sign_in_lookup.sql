-- agent_sign_in_lookup: who may sign in with this identity from the OpenID provider: the
-- agent already bound to (p_issuer, p_subject), or else every invitation still pending for
-- the e-mail address (case-insensitive), oldest first; each with the agent's organisation,
-- its parent and grandparent (the chain is at most three levels deep). No row: nobody
-- invited this person.
--
-- The callback of the sign-in (plume.identity.service) calls it before the caller is known,
-- with no tenant context. It reads only: the decision (the SIRET, the statuses) is the
-- caller's, and binding the agent and opening the session are done afterwards by the
-- application role, within the chosen organisation's scope.
--
-- The source of the function: tests/runtime/test_sql_sources.py checks that the migrated
-- database's function is this text. A change takes a new migration holding a frozen copy.
CREATE OR REPLACE FUNCTION agent_sign_in_lookup(p_issuer text, p_subject text, p_email text)
RETURNS TABLE (agent public.agents, organization public.organizations,
               parent public.organizations, grandparent public.organizations)
LANGUAGE plpgsql
-- Runs as its owner, plume_definer, as api_key_lookup does (docs/architecture.md,
-- row-level security).
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    candidate public.agents;
    level1 public.organizations;
    level2 public.organizations;
    level3 public.organizations;
    bound boolean;
BEGIN
    bound := EXISTS (SELECT FROM public.agents AS a
                     WHERE a.issuer = p_issuer AND a.subject = p_subject);
    FOR candidate IN
        SELECT a.* FROM public.agents AS a
        WHERE (bound AND a.issuer = p_issuer AND a.subject = p_subject)
           OR (NOT bound AND a.subject IS NULL AND a.status = 'invited'
               AND lower(a.email) = lower(p_email))
        ORDER BY a.created_at, a.id
    LOOP
        SELECT o.* INTO level1 FROM public.organizations AS o
        WHERE o.id = candidate.organization_id;
        SELECT o.* INTO level2 FROM public.organizations AS o WHERE o.id = level1.parent_id;
        SELECT o.* INTO level3 FROM public.organizations AS o WHERE o.id = level2.parent_id;
        RETURN QUERY
        SELECT candidate, level1,
               CASE WHEN level2.id IS NULL THEN NULL ELSE level2 END,
               CASE WHEN level3.id IS NULL THEN NULL ELSE level3 END;
    END LOOP;
END
$$;
