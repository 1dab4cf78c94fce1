-- Appends one entry to an organisation's audit chain, in the caller's transaction, and
-- answers its sequence number and hash. The hashing rule (docs/audit.md):
--     hash = SHA-256(seq || '\n' || prev_hash || '\n' || body), hex; the first prev_hash
--     is 64 zeros.
-- The only way to write a chain: the application role may read entries and heads, never
-- insert or change them itself, so it can neither forge an entry (any seq, any hash) nor
-- move a head.
--
-- The source of the function: tests/runtime/test_sql_sources.py checks that the migrated
-- database's function is this text. A change takes a new migration holding a frozen copy.
CREATE OR REPLACE FUNCTION audit_append(
    p_organization uuid, p_occurred_at timestamptz, p_action text, p_actor_key_id uuid,
    p_actor_role text, p_body text)
RETURNS TABLE (entry_seq bigint, entry_hash text)
LANGUAGE plpgsql
-- Runs as its owner, within the caller's scope: the owner's row-level policies (the tables
-- force row-level security) show it only the chains of the transaction's scope.
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan
AS $$
BEGIN
    -- The scope check: an entry is appended only to a chain of the transaction's scope.
    IF NOT (current_setting('plume.all_organizations', true) = 'on'
            OR p_organization = ANY (string_to_array(
                nullif(current_setting('plume.organizations', true), ''), ',')::uuid[])) THEN
        RAISE EXCEPTION 'organisation % is outside this transaction''s scope', p_organization
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    -- The chain's head row is upserted first, which locks it: appends to one chain are
    -- serialised, and each computes its hash from the head as the previous append left it.
    WITH head AS (
        INSERT INTO public.audit_heads AS h (organization_id, seq, prev_hash, hash)
        VALUES (p_organization, 1, repeat('0', 64),
                encode(sha256(convert_to(
                    '1' || E'\n' || repeat('0', 64) || E'\n' || p_body, 'UTF8')), 'hex'))
        ON CONFLICT (organization_id) DO UPDATE
            SET seq = h.seq + 1,
                prev_hash = h.hash,
                hash = encode(sha256(convert_to(
                    (h.seq + 1)::text || E'\n' || h.hash || E'\n' || p_body, 'UTF8')), 'hex')
        RETURNING h.seq, h.prev_hash, h.hash
    )
    -- Then the entry, from the head's new values.
    INSERT INTO public.audit_entries AS e
        (organization_id, seq, occurred_at, action, actor_key_id, actor_role, body,
         prev_hash, hash)
    SELECT p_organization, head.seq, p_occurred_at, p_action, p_actor_key_id, p_actor_role,
           p_body, head.prev_hash, head.hash
    FROM head
    RETURNING e.seq, e.hash INTO entry_seq, entry_hash;
    RETURN NEXT;
END
$$;
