-- quota_split_check: the trigger (quotas_split_check, BEFORE INSERT OR UPDATE OR DELETE ON
-- quotas, FOR EACH ROW) that holds an EPCI to what it may hand its communes. The system's
-- scope (the operator, the command line) sets any quota, and so does a superuser (who
-- bypasses row-level security as well); any other writer (an EPCI's tenant admin splitting
-- its allowance: the row-level policies let only a parent write its children's quotas) may
-- only split the quotas the parent has itself, and the children's limits on each add up to
-- at most the parent's. plume.quotas.service checks the same first, to answer with a
-- message naming the field; this is the wall behind it.
--
-- The source of the function: tests/runtime/test_sql_sources.py checks that the migrated
-- database's function is this text. A change takes a new migration holding a frozen copy.
CREATE OR REPLACE FUNCTION quota_split_check()
RETURNS trigger
LANGUAGE plpgsql
-- Invoker's rights: it reads what the writer's scope shows (an EPCI's tenant admin sees the
-- EPCI and every one of its communes) and locks the parent's row as the writer.
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    quota public.quotas;
    parent uuid;
    ceiling numeric;
    given numeric;
BEGIN
    IF current_setting('plume.all_organizations', true) = 'on'
       OR (SELECT r.rolsuper FROM pg_catalog.pg_roles AS r WHERE r.rolname = current_user) THEN
        RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
    END IF;
    quota := CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
    -- A quota stays the quota of its organisation, metric and period (the application
    -- only ever changes its limit).
    IF TG_OP = 'UPDATE' AND (OLD.organization_id, OLD.metric, OLD.period)
                            IS DISTINCT FROM (NEW.organization_id, NEW.metric, NEW.period) THEN
        RAISE EXCEPTION 'only the operator moves a quota'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    SELECT o.parent_id INTO parent
    FROM public.organizations AS o WHERE o.id = quota.organization_id;
    -- Splits of one parent's allowance are serialised on the parent's row (as the service
    -- and the operator's changes to the parent's quotas lock it): two cannot both fit on
    -- their own and overflow together.
    PERFORM 1 FROM public.organizations AS o WHERE o.id = parent FOR UPDATE;
    SELECT q."limit" INTO ceiling FROM public.quotas AS q
    WHERE q.organization_id = parent AND q.metric = quota.metric AND q.period = quota.period;
    IF ceiling IS NULL THEN
        RAISE EXCEPTION 'the parent of organisation % has no % quota per % to split',
            quota.organization_id, quota.metric, quota.period
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    SELECT coalesce(sum(q."limit"), 0) INTO given
    FROM public.quotas AS q
    JOIN public.organizations AS o ON o.id = q.organization_id
    WHERE o.parent_id = parent AND q.organization_id <> NEW.organization_id
      AND q.metric = NEW.metric AND q.period = NEW.period;
    IF given + NEW."limit" > ceiling THEN
        RAISE EXCEPTION 'the children''s % quotas per % would exceed their parent''s (% of %)',
            NEW.metric, NEW.period, given + NEW."limit", ceiling
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END
$$;
