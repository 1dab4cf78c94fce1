-- audit_entries_append_only: the trigger that keeps the audit trail append-only, even for
-- the table's owner (audit_entries_append_only BEFORE UPDATE OR DELETE, FOR EACH ROW, and
-- audit_entries_no_truncate BEFORE TRUNCATE). Only `plume audit purge` deletes: it runs as
-- the owner, not as plume_app, with plume.audit_purge set for its transaction.
--
-- The source of the function: tests/test_sql_sources.py checks that the migrated database's
-- function is this text, which is, indentation included, what the migration
-- 2026-11-27-1509_audit_trail.py created. A change takes a new migration holding a frozen
-- copy of it.
CREATE OR REPLACE FUNCTION audit_entries_append_only()
RETURNS trigger
LANGUAGE plpgsql
AS $$
        BEGIN
            IF TG_OP = 'DELETE'
               AND current_setting('plume.audit_purge', true) = 'on'
               AND current_user <> 'plume_app' THEN
                RETURN OLD;
            END IF;
            RAISE EXCEPTION 'audit_entries is append-only: % refused', TG_OP
                USING ERRCODE = 'insufficient_privilege';
        END
        $$;
