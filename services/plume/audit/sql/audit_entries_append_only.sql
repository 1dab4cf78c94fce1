-- audit_entries_append_only: the trigger that keeps the audit trail append-only, even for
-- the table's owner (audit_entries_append_only BEFORE UPDATE OR DELETE, FOR EACH ROW, and
-- audit_entries_no_truncate BEFORE TRUNCATE). Only `plume audit purge` deletes: it runs as
-- the table's owner (or a superuser), never as the serving role nor plume_app, with
-- plume.audit_purge set for its transaction.
--
-- The source of the function: tests/runtime/test_sql_sources.py checks that the migrated
-- database's function is this text. A change takes a new migration holding a frozen copy.
CREATE OR REPLACE FUNCTION audit_entries_append_only()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- Who deletes is a role, checked here: the setting alone is not enough, since any
    -- session may set it. The table's owner (who could drop the trigger anyway) or a
    -- superuser.
    IF TG_OP = 'DELETE'
       AND current_setting('plume.audit_purge', true) = 'on'
       AND EXISTS (
           SELECT FROM pg_catalog.pg_roles AS r
           WHERE r.rolname = current_user
             AND (r.rolsuper OR r.oid = (SELECT c.relowner FROM pg_catalog.pg_class AS c
                                         WHERE c.oid = TG_RELID))) THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit_entries is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
