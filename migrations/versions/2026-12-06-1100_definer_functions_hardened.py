"""SQL functions hardened for forced row-level security, and the functions that take over
what the application role may no longer write itself.

Every SECURITY DEFINER function pins `search_path = pg_catalog, pg_temp` (every object they
use is schema-qualified; `pg_temp` last, so that no temporary object can shadow one), review
finding L-9. The next revision forces row-level security on the tenant tables, which makes
their owner subject to the policies too: the functions that read past the transaction's
scope (`quota_reserve`, `quota_settle`, `api_key_lookup`) are then given to a role of their
own, `plume_definer`, whose policies let it through; the others act within the caller's
scope, under the owner's policies. The ledger's functions refuse negative amounts (L-1).

New functions, the only ways for the application role to do what its privileges no longer
allow (next revision):
* `api_key_lookup(hashes, version)`: the key and its chain before the caller is known
  (authentication), with the re-hash after a secret's rotation and the use's timestamp;
* `api_key_revoke(id)`: revoke a key of the transaction's scope (an operator_admin key only
  with the system's scope);
* `organization_update(id, name, status, policy)`: the operator's changes to an
  organisation, with the system's scope only;
* `quota_split_check()`: the trigger (invoker's rights) that holds an EPCI's split of its
  quotas between its communes to what the EPCI has (the ceiling that only Python checked
  before, M-2).
`audit_append` becomes SECURITY DEFINER with a scope check: the only way to write a chain
(M-4); the append-only trigger lets only the table's owner (or a superuser) purge, whatever
setting a session writes.

The functions' sources are the files under services/plume/*/sql/; this revision holds frozen
copies of them as they were when it was written, and of the previous texts for the
downgrade (2026-12-06-0900 and -1000, and 2026-11-27-1509 for the trigger).

Revision ID: 4c4f207683b5
Revises: 4e7a1c9d2b60
Create Date: 2026-12-06 11:00:00.000000+00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "4c4f207683b5"
down_revision: str | None = "4e7a1c9d2b60"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# services/plume/quotas/sql/quota_reserve.sql
QUOTA_RESERVE = r"""
-- quota_reserve: hold what a request may use against every quota of its organisation and of
-- the organisation's ancestors (EPCI, operator), in the windows containing p_now. Answers one
-- row: the quota that refused, or else the tightest one; no row when no quota applies.
--
-- The source of the function: tests/runtime/test_sql_sources.py checks that the migrated
-- database's function is this text. A change takes a new migration holding a frozen copy.
CREATE OR REPLACE FUNCTION quota_reserve(
    p_id uuid, p_organization uuid, p_now timestamptz, p_tokens numeric, p_cost numeric,
    p_expires_at timestamptz)
RETURNS TABLE (organization_id uuid, metric text, period text, quota numeric,
               window_start timestamptz, amount numeric, used numeric, reserved numeric,
               accepted boolean)
LANGUAGE plpgsql
-- Runs as its owner, plume_definer: the application role reads the ledger but cannot write
-- it, and the organisation's ancestors and their ledger rows are outside the caller's scope.
-- plume_definer's row-level policies let it through every row, only as itself: in the body
-- of the functions it owns (docs/architecture.md, row-level security).
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
SET enable_bitmapscan = off
AS $$
-- What the options above are for:
-- * search_path: pinned, and every table schema-qualified, as befits SECURITY DEFINER.
-- * plan_cache_mode: a generic plan, planned once per connection. Re-planning these statements
--   on every call (what PostgreSQL would choose by itself here) costs more than running them.
-- * enable_seqscan, enable_bitmapscan: the ledger is read through its primary key only, whose
--   index scan visits `organization_id = ANY (...)` in ascending order. Every statement that
--   moves several ledger rows (here and in quota_settle) thus locks them in that one order,
--   and reservations and settlements never deadlock. A sequential or bitmap scan would lock
--   the rows in the order of their places on disk instead.
DECLARE
    -- The windows containing p_now. A minute is the same everywhere; a day and a month are
    -- calendar periods in Europe/Paris, daylight-saving changes included (a day of 23 or 25
    -- hours). plume.quotas.periods computes the same windows in Python, and
    -- tests/test_calendar_agreement.py checks that both agree.
    w_minute CONSTANT timestamptz := date_trunc('minute', p_now);
    w_day CONSTANT timestamptz := date_trunc('day', p_now, 'Europe/Paris');
    w_month CONSTANT timestamptz := date_trunc('month', p_now, 'Europe/Paris');
BEGIN
    -- A reservation holds what a request may use: never a negative amount, which would
    -- give back quota nobody used.
    IF p_tokens < 0 OR p_cost < 0 THEN
        RAISE EXCEPTION 'a reservation cannot hold a negative amount'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- The scope check. Row-level security does not restrict this function's owner, so it
    -- checks what the policies would: the organisation it reserves for must be in the
    -- transaction's scope (the settings plume.db.enter_tenant_context writes).
    IF NOT (current_setting('plume.all_organizations', true) = 'on'
            OR p_organization = ANY (string_to_array(
                nullif(current_setting('plume.organizations', true), ''), ',')::uuid[])) THEN
        RAISE EXCEPTION 'organisation % is outside this transaction''s scope', p_organization
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN QUERY
    -- The organisation's chain: itself, its EPCI, the operator. Read from the organisation
    -- tree here, never from the caller.
    WITH RECURSIVE chain AS (
        SELECT o.id, o.parent_id FROM public.organizations AS o WHERE o.id = p_organization
        UNION ALL
        SELECT o.id, o.parent_id FROM public.organizations AS o JOIN chain ON o.id = chain.parent_id
    ),
    -- Every level of the chain with at least one quota (a limit that is not NULL; the
    -- trigger quota_ledger_copy_limits keeps the limits in the row): its ledger row is
    -- locked, in organisation order, and its holds raised by the request's amounts, whatever
    -- they reach. The row is the one as it stands once locked, a concurrent request's change
    -- included. Whether the request fits is read from the rows this leaves (answer, below):
    -- when it does not, the caller rolls the transaction back, and the row locks have kept
    -- every other request from seeing these holds meanwhile.
    taken AS (
        UPDATE public.quota_ledger AS l SET
            reserved_requests = l.reserved_requests + 1,
            reserved_tokens = l.reserved_tokens + p_tokens,
            reserved_cost_eur = l.reserved_cost_eur + p_cost
        WHERE l.organization_id = ANY (ARRAY(SELECT chain.id FROM chain))
          AND (l.minute_requests_limit IS NOT NULL OR l.minute_tokens_limit IS NOT NULL
               OR l.minute_cost_eur_limit IS NOT NULL OR l.day_requests_limit IS NOT NULL
               OR l.day_tokens_limit IS NOT NULL OR l.day_cost_eur_limit IS NOT NULL
               OR l.month_requests_limit IS NOT NULL OR l.month_tokens_limit IS NOT NULL
               OR l.month_cost_eur_limit IS NOT NULL)
        RETURNING l.*
    ),
    -- The reservation, with the levels it holds (in organisation order), for quota_settle;
    -- none when no level has a quota.
    held AS (
        INSERT INTO public.quota_reservations
            (id, organization_id, tokens, cost_eur, holds, expires_at)
        SELECT p_id, p_organization, p_tokens, p_cost,
               array_agg(taken.organization_id ORDER BY taken.organization_id), p_expires_at
        FROM taken
        HAVING count(*) > 0
    ),
    -- One row per quota of a level that took the reservation: its limit, its window, the
    -- request's amount of its metric, the window's use and what requests in flight hold,
    -- this one included. A window's use counts only while the row is in the window of p_now:
    -- a ledger row whose window has rolled since its last settlement has used nothing yet in
    -- this one (the row's windows themselves roll forward when a request is settled).
    -- rank orders the periods: minute 1, day 2, month 3. A quota fits when its use and
    -- every hold, this request's included, stay within its limit.
    answer AS (
        SELECT t.organization_id, v.metric, v.period, v.quota, v.window_start, v.amount,
               v.used, v.reserved, v.rank, v.used + v.reserved <= v.quota AS fits
        FROM taken AS t,
        LATERAL (VALUES
            ('requests', 'minute', t.minute_requests_limit, w_minute, 1,
             CASE WHEN w_minute IS NULL OR t.minute_start >= w_minute
                  THEN t.minute_requests ELSE 0 END,
             t.reserved_requests, 1),
            ('tokens', 'minute', t.minute_tokens_limit, w_minute, p_tokens,
             CASE WHEN w_minute IS NULL OR t.minute_start >= w_minute
                  THEN t.minute_tokens ELSE 0 END,
             t.reserved_tokens, 1),
            ('cost_eur', 'minute', t.minute_cost_eur_limit, w_minute, p_cost,
             CASE WHEN w_minute IS NULL OR t.minute_start >= w_minute
                  THEN t.minute_cost_eur ELSE 0 END,
             t.reserved_cost_eur, 1),
            ('requests', 'day', t.day_requests_limit, w_day, 1,
             CASE WHEN w_day IS NULL OR t.day_start >= w_day
                  THEN t.day_requests ELSE 0 END,
             t.reserved_requests, 2),
            ('tokens', 'day', t.day_tokens_limit, w_day, p_tokens,
             CASE WHEN w_day IS NULL OR t.day_start >= w_day
                  THEN t.day_tokens ELSE 0 END,
             t.reserved_tokens, 2),
            ('cost_eur', 'day', t.day_cost_eur_limit, w_day, p_cost,
             CASE WHEN w_day IS NULL OR t.day_start >= w_day
                  THEN t.day_cost_eur ELSE 0 END,
             t.reserved_cost_eur, 2),
            ('requests', 'month', t.month_requests_limit, w_month, 1,
             CASE WHEN w_month IS NULL OR t.month_start >= w_month
                  THEN t.month_requests ELSE 0 END,
             t.reserved_requests, 3),
            ('tokens', 'month', t.month_tokens_limit, w_month, p_tokens,
             CASE WHEN w_month IS NULL OR t.month_start >= w_month
                  THEN t.month_tokens ELSE 0 END,
             t.reserved_tokens, 3),
            ('cost_eur', 'month', t.month_cost_eur_limit, w_month, p_cost,
             CASE WHEN w_month IS NULL OR t.month_start >= w_month
                  THEN t.month_cost_eur ELSE 0 END,
             t.reserved_cost_eur, 3)
        ) AS v(metric, period, quota, window_start, amount, used, reserved, rank)
        WHERE v.quota IS NOT NULL
    )
    -- The answer, one row:
    -- * if a quota does not fit (they come first: false sorts before true), the request is
    --   refused, wholly, and the answer is the refusing quota that stays shut the longest:
    --   a month's over a day's over a minute's (the highest rank first). Its reserved is
    --   given as it stood before this request, which the caller rolls back.
    -- * else the request is accepted, and the answer is the tightest quota: the least
    --   fraction of its limit remaining after the reservation (for RateLimit-* headers);
    --   between equals, the shortest period.
    SELECT q.organization_id, q.metric, q.period, q.quota, q.window_start, q.amount, q.used,
           q.reserved - CASE WHEN q.fits THEN 0 ELSE q.amount END, q.fits
    FROM answer AS q
    ORDER BY q.fits,
             CASE WHEN NOT q.fits THEN -q.rank END,
             (q.quota - q.used - q.reserved) / q.quota,
             q.rank
    LIMIT 1;
END
$$;
"""

# services/plume/quotas/sql/quota_settle.sql
QUOTA_SETTLE = r"""
-- quota_settle: replace what a reservation held by what its request used (zeros release it),
-- in the windows containing p_now. True when the reservation was found and settled.
--
-- The source of the function: tests/runtime/test_sql_sources.py checks that the migrated
-- database's function is this text. A change takes a new migration holding a frozen copy.
CREATE OR REPLACE FUNCTION quota_settle(
    p_id uuid, p_requests numeric, p_tokens numeric, p_cost numeric,
    p_organization uuid, p_now timestamptz)
RETURNS boolean
LANGUAGE plpgsql
-- Runs as its owner, plume_definer: the application role reads the ledger but cannot write
-- it, and the organisation's ancestors and their ledger rows are outside the caller's scope.
-- plume_definer's row-level policies let it through every row, only as itself: in the body
-- of the functions it owns (docs/architecture.md, row-level security).
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
SET enable_bitmapscan = off
AS $$
-- What the options above are for (as in quota_reserve):
-- * search_path: pinned, and every table schema-qualified, as befits SECURITY DEFINER.
-- * plan_cache_mode: a generic plan, planned once per connection, costs less than
--   re-planning on every call.
-- * enable_seqscan, enable_bitmapscan: the ledger is read through its primary key only, whose
--   index scan visits `organization_id = ANY (...)` in ascending order, so the ledger rows of
--   a chain are locked in organisation order, as quota_reserve locks them: reservations and
--   settlements never deadlock.
--
-- A settlement charges p_requests, p_tokens and p_cost to every window (minute, day, month)
-- of each level, and a window that has rolled since the row's last move starts from zero.
-- Without a time (p_now NULL, as the sweep releases), the windows stay as they stand:
-- greatest() ignores NULL.
DECLARE
    -- The windows containing p_now: a minute; a day and a month in Europe/Paris, as in
    -- quota_reserve (and plume.quotas.periods).
    w_minute CONSTANT timestamptz := date_trunc('minute', p_now);
    w_day CONSTANT timestamptz := date_trunc('day', p_now, 'Europe/Paris');
    w_month CONSTANT timestamptz := date_trunc('month', p_now, 'Europe/Paris');
    moved integer;
BEGIN
    -- What a request used is never negative: a negative amount would lower the use of every
    -- level of the chain (the ledger's CHECK refuses a negative use, too).
    IF p_requests < 0 OR p_tokens < 0 OR p_cost < 0 THEN
        RAISE EXCEPTION 'a settlement cannot charge a negative amount'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- The reservation, gone for good: a reservation already settled or swept is not found,
    -- so nothing is settled twice. Only a reservation of an organisation in the
    -- transaction's scope is found (the scope check, as the row-level policies would).
    -- Each level it holds gives back the request's holds and takes what was used, in the
    -- one statement, its rows locked in organisation order.
    WITH gone AS (
        DELETE FROM public.quota_reservations AS r
        WHERE r.id = p_id
          AND (current_setting('plume.all_organizations', true) = 'on'
               OR r.organization_id = ANY (string_to_array(
                   nullif(current_setting('plume.organizations', true), ''), ',')::uuid[]))
        RETURNING r.tokens, r.cost_eur, r.holds
    )
    UPDATE public.quota_ledger AS l SET
        minute_start = greatest(l.minute_start, w_minute),
        day_start = greatest(l.day_start, w_day),
        month_start = greatest(l.month_start, w_month),
        minute_requests = CASE WHEN w_minute IS NULL OR l.minute_start >= w_minute
                               THEN l.minute_requests ELSE 0 END + p_requests,
        minute_tokens = CASE WHEN w_minute IS NULL OR l.minute_start >= w_minute
                             THEN l.minute_tokens ELSE 0 END + p_tokens,
        minute_cost_eur = CASE WHEN w_minute IS NULL OR l.minute_start >= w_minute
                               THEN l.minute_cost_eur ELSE 0 END + p_cost,
        day_requests = CASE WHEN w_day IS NULL OR l.day_start >= w_day
                            THEN l.day_requests ELSE 0 END + p_requests,
        day_tokens = CASE WHEN w_day IS NULL OR l.day_start >= w_day
                          THEN l.day_tokens ELSE 0 END + p_tokens,
        day_cost_eur = CASE WHEN w_day IS NULL OR l.day_start >= w_day
                            THEN l.day_cost_eur ELSE 0 END + p_cost,
        month_requests = CASE WHEN w_month IS NULL OR l.month_start >= w_month
                              THEN l.month_requests ELSE 0 END + p_requests,
        month_tokens = CASE WHEN w_month IS NULL OR l.month_start >= w_month
                            THEN l.month_tokens ELSE 0 END + p_tokens,
        month_cost_eur = CASE WHEN w_month IS NULL OR l.month_start >= w_month
                              THEN l.month_cost_eur ELSE 0 END + p_cost,
        reserved_requests = l.reserved_requests - 1,
        reserved_tokens = l.reserved_tokens - gone.tokens,
        reserved_cost_eur = l.reserved_cost_eur - gone.cost_eur
    FROM gone
    WHERE l.organization_id = ANY (gone.holds);
    GET DIAGNOSTICS moved = ROW_COUNT;
    -- Settled; or nothing to charge (a release, a request not charged) and nothing held.
    IF moved > 0 OR p_requests = 0 THEN
        RETURN moved > 0;
    END IF;
    -- A charged request whose reservation is gone (swept after its TTL, or lost with the
    -- asynchronous commit of its reservation) is charged all the same, to its chain as it
    -- stands now: it has happened. The organisation must be in the transaction's scope.
    IF NOT (current_setting('plume.all_organizations', true) = 'on'
            OR p_organization = ANY (string_to_array(
                nullif(current_setting('plume.organizations', true), ''), ',')::uuid[])) THEN
        RAISE EXCEPTION 'organisation % is outside this transaction''s scope', p_organization
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    -- Every level of the chain (itself, its EPCI, the operator) that has a quota, its row
    -- locked in organisation order.
    UPDATE public.quota_ledger AS l SET
        minute_start = greatest(l.minute_start, w_minute),
        day_start = greatest(l.day_start, w_day),
        month_start = greatest(l.month_start, w_month),
        minute_requests = CASE WHEN w_minute IS NULL OR l.minute_start >= w_minute
                               THEN l.minute_requests ELSE 0 END + p_requests,
        minute_tokens = CASE WHEN w_minute IS NULL OR l.minute_start >= w_minute
                             THEN l.minute_tokens ELSE 0 END + p_tokens,
        minute_cost_eur = CASE WHEN w_minute IS NULL OR l.minute_start >= w_minute
                               THEN l.minute_cost_eur ELSE 0 END + p_cost,
        day_requests = CASE WHEN w_day IS NULL OR l.day_start >= w_day
                            THEN l.day_requests ELSE 0 END + p_requests,
        day_tokens = CASE WHEN w_day IS NULL OR l.day_start >= w_day
                          THEN l.day_tokens ELSE 0 END + p_tokens,
        day_cost_eur = CASE WHEN w_day IS NULL OR l.day_start >= w_day
                            THEN l.day_cost_eur ELSE 0 END + p_cost,
        month_requests = CASE WHEN w_month IS NULL OR l.month_start >= w_month
                              THEN l.month_requests ELSE 0 END + p_requests,
        month_tokens = CASE WHEN w_month IS NULL OR l.month_start >= w_month
                            THEN l.month_tokens ELSE 0 END + p_tokens,
        month_cost_eur = CASE WHEN w_month IS NULL OR l.month_start >= w_month
                              THEN l.month_cost_eur ELSE 0 END + p_cost
    WHERE l.organization_id = ANY (ARRAY(
        WITH RECURSIVE chain AS (
            SELECT o.id, o.parent_id FROM public.organizations AS o
            WHERE o.id = p_organization
            UNION ALL
            SELECT o.id, o.parent_id FROM public.organizations AS o
            JOIN chain ON o.id = chain.parent_id
        ) SELECT chain.id FROM chain))
      AND (l.minute_requests_limit IS NOT NULL OR l.minute_tokens_limit IS NOT NULL
           OR l.minute_cost_eur_limit IS NOT NULL OR l.day_requests_limit IS NOT NULL
           OR l.day_tokens_limit IS NOT NULL OR l.day_cost_eur_limit IS NOT NULL
           OR l.month_requests_limit IS NOT NULL OR l.month_tokens_limit IS NOT NULL
           OR l.month_cost_eur_limit IS NOT NULL);
    RETURN false;
END
$$;
"""

# services/plume/quotas/sql/quota_extend.sql
QUOTA_EXTEND = r"""
-- quota_extend: a synthese accepted as a job keeps its reservation until the job ends; this
-- moves the reservation's expiry, so that the sweep leaves it alone meanwhile.
--
-- The source of the function: tests/runtime/test_sql_sources.py checks that the migrated
-- database's function is this text. A change takes a new migration holding a frozen copy.
CREATE OR REPLACE FUNCTION quota_extend(p_id uuid, p_expires_at timestamptz)
RETURNS void
LANGUAGE plpgsql
-- Runs as its owner: the application role cannot write reservations.
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan
AS $$
-- search_path pinned and tables schema-qualified, as befits SECURITY DEFINER; a generic
-- plan, planned once per connection.
BEGIN
    -- The scope check: only a reservation of an organisation in the transaction's scope is
    -- extended (another one is left as it is, silently), as the row-level policies would.
    UPDATE public.quota_reservations AS r SET expires_at = p_expires_at
    WHERE r.id = p_id
      AND (current_setting('plume.all_organizations', true) = 'on'
           OR r.organization_id = ANY (string_to_array(
               nullif(current_setting('plume.organizations', true), ''), ',')::uuid[]));
END
$$;
"""

# services/plume/quotas/sql/quota_release_expired.sql
QUOTA_RELEASE_EXPIRED = r"""
-- quota_release_expired: release, one by one, at most p_batch reservations that expired
-- before p_now (their request died with its process); returns how many. The sweeper
-- (plume.quotas.sweeper) calls it with the system's scope.
--
-- The source of the function: tests/runtime/test_sql_sources.py checks that the migrated
-- database's function is this text. A change takes a new migration holding a frozen copy.
CREATE OR REPLACE FUNCTION quota_release_expired(p_now timestamptz, p_batch integer)
RETURNS integer
LANGUAGE plpgsql
-- Runs as its owner: the application role cannot write reservations or the ledger.
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    due record;
    released integer := 0;
BEGIN
    -- The scope check: only the system's sweep, whose scope is every organisation, may
    -- release reservations that are not its own.
    IF current_setting('plume.all_organizations', true) IS DISTINCT FROM 'on' THEN
        RAISE EXCEPTION 'only the system sweeps reservations'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    -- The oldest first. SKIP LOCKED: a reservation being settled right now, or taken by the
    -- sweep of another process, is left to it.
    FOR due IN
        SELECT r.id FROM public.quota_reservations AS r
        WHERE r.expires_at < p_now
        ORDER BY r.expires_at
        LIMIT p_batch
        FOR UPDATE SKIP LOCKED
    LOOP
        -- A release: nothing used, no time (the windows stay as they stand); its holds are
        -- given back. Should the request settle later after all, quota_settle finds no
        -- reservation and charges its chain all the same.
        PERFORM public.quota_settle(due.id, 0, 0, 0, NULL, NULL);
        released := released + 1;
    END LOOP;
    RETURN released;
END
$$;
"""

# services/plume/quotas/sql/quota_ledger_copy_limits.sql
QUOTA_LEDGER_COPY_LIMITS = r"""
-- quota_ledger_copy_limits: the trigger (quotas_copy_limits, AFTER INSERT OR UPDATE OR DELETE
-- ON quotas, FOR EACH ROW) that copies an organisation's limits into its ledger row whenever
-- one of its quotas changes, creating the row if need be.
--
-- The source of the function: tests/runtime/test_sql_sources.py checks that the migrated
-- database's function is this text. A change takes a new migration holding a frozen copy.
CREATE OR REPLACE FUNCTION quota_ledger_copy_limits()
RETURNS trigger
LANGUAGE plpgsql
-- Runs as its owner: the application role, which may write quotas (under their row-level
-- policies), cannot write the ledger itself. It touches only the organisation whose quota
-- changed, which the writer's scope holds: the owner's row-level policies (the tables force
-- row-level security) let it through on that scope alone.
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
-- Each ledger row holds its organisation's limits, one column per period and metric (NULL:
-- no such quota), so that quota_reserve compares columns with columns instead of reading
-- and matching the quotas on every request. The limits are recomputed from all of the
-- organisation's quotas, not patched from the row that changed. A row created here has
-- windows long past (1970): the first request's settlement rolls them to its own.
BEGIN
    -- The organisation a quota left (deleted, or moved to another): once, not twice.
    IF TG_OP = 'DELETE'
       OR (TG_OP = 'UPDATE' AND OLD.organization_id <> NEW.organization_id) THEN
        INSERT INTO public.quota_ledger AS l
            (organization_id, minute_start, day_start, month_start,
             minute_requests_limit, minute_tokens_limit, minute_cost_eur_limit,
             day_requests_limit, day_tokens_limit, day_cost_eur_limit,
             month_requests_limit, month_tokens_limit, month_cost_eur_limit)
        SELECT o.id, '1970-01-01 00:00:00+00'::timestamptz,
               '1970-01-01 00:00:00+00'::timestamptz, '1970-01-01 00:00:00+00'::timestamptz,
               max(q."limit") FILTER (WHERE q.period = 'minute' AND q.metric = 'requests'),
               max(q."limit") FILTER (WHERE q.period = 'minute' AND q.metric = 'tokens'),
               max(q."limit") FILTER (WHERE q.period = 'minute' AND q.metric = 'cost_eur'),
               max(q."limit") FILTER (WHERE q.period = 'day' AND q.metric = 'requests'),
               max(q."limit") FILTER (WHERE q.period = 'day' AND q.metric = 'tokens'),
               max(q."limit") FILTER (WHERE q.period = 'day' AND q.metric = 'cost_eur'),
               max(q."limit") FILTER (WHERE q.period = 'month' AND q.metric = 'requests'),
               max(q."limit") FILTER (WHERE q.period = 'month' AND q.metric = 'tokens'),
               max(q."limit") FILTER (WHERE q.period = 'month' AND q.metric = 'cost_eur')
        FROM public.organizations AS o
        LEFT JOIN public.quotas AS q ON q.organization_id = o.id
        WHERE o.id = OLD.organization_id
        GROUP BY o.id
        ON CONFLICT ON CONSTRAINT quota_ledger_pkey DO UPDATE SET
            minute_requests_limit = excluded.minute_requests_limit,
            minute_tokens_limit = excluded.minute_tokens_limit,
            minute_cost_eur_limit = excluded.minute_cost_eur_limit,
            day_requests_limit = excluded.day_requests_limit,
            day_tokens_limit = excluded.day_tokens_limit,
            day_cost_eur_limit = excluded.day_cost_eur_limit,
            month_requests_limit = excluded.month_requests_limit,
            month_tokens_limit = excluded.month_tokens_limit,
            month_cost_eur_limit = excluded.month_cost_eur_limit;
    END IF;
    -- The organisation a quota belongs to now (inserted or updated).
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO public.quota_ledger AS l
            (organization_id, minute_start, day_start, month_start,
             minute_requests_limit, minute_tokens_limit, minute_cost_eur_limit,
             day_requests_limit, day_tokens_limit, day_cost_eur_limit,
             month_requests_limit, month_tokens_limit, month_cost_eur_limit)
        SELECT o.id, '1970-01-01 00:00:00+00'::timestamptz,
               '1970-01-01 00:00:00+00'::timestamptz, '1970-01-01 00:00:00+00'::timestamptz,
               max(q."limit") FILTER (WHERE q.period = 'minute' AND q.metric = 'requests'),
               max(q."limit") FILTER (WHERE q.period = 'minute' AND q.metric = 'tokens'),
               max(q."limit") FILTER (WHERE q.period = 'minute' AND q.metric = 'cost_eur'),
               max(q."limit") FILTER (WHERE q.period = 'day' AND q.metric = 'requests'),
               max(q."limit") FILTER (WHERE q.period = 'day' AND q.metric = 'tokens'),
               max(q."limit") FILTER (WHERE q.period = 'day' AND q.metric = 'cost_eur'),
               max(q."limit") FILTER (WHERE q.period = 'month' AND q.metric = 'requests'),
               max(q."limit") FILTER (WHERE q.period = 'month' AND q.metric = 'tokens'),
               max(q."limit") FILTER (WHERE q.period = 'month' AND q.metric = 'cost_eur')
        FROM public.organizations AS o
        LEFT JOIN public.quotas AS q ON q.organization_id = o.id
        WHERE o.id = NEW.organization_id
        GROUP BY o.id
        ON CONFLICT ON CONSTRAINT quota_ledger_pkey DO UPDATE SET
            minute_requests_limit = excluded.minute_requests_limit,
            minute_tokens_limit = excluded.minute_tokens_limit,
            minute_cost_eur_limit = excluded.minute_cost_eur_limit,
            day_requests_limit = excluded.day_requests_limit,
            day_tokens_limit = excluded.day_tokens_limit,
            day_cost_eur_limit = excluded.day_cost_eur_limit,
            month_requests_limit = excluded.month_requests_limit,
            month_tokens_limit = excluded.month_tokens_limit,
            month_cost_eur_limit = excluded.month_cost_eur_limit;
    END IF;
    -- An AFTER trigger: the value returned is ignored.
    RETURN NULL;
END
$$;
"""

# services/plume/audit/sql/audit_append.sql
AUDIT_APPEND = r"""
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
"""

# services/plume/audit/sql/audit_entries_append_only.sql
AUDIT_ENTRIES_APPEND_ONLY = r"""
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
"""

# services/plume/credentials/sql/api_key_lookup.sql
API_KEY_LOOKUP = r"""
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
"""

# services/plume/credentials/sql/api_key_revoke.sql
API_KEY_REVOKE = r"""
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
"""

# services/plume/organizations/sql/organization_update.sql
ORGANIZATION_UPDATE = r"""
-- organization_update: what the operator changes of an organisation (PATCH
-- /v1/admin/organizations/{id}): its name, its status (active or suspended) and the policy
-- set at its level, as given (the caller merges a patch into the policy first). Only with
-- the system's scope (an operator admin, the command line); answers whether the
-- organisation was found. The operator organisation is never suspended.
--
-- The application role may not UPDATE an organisation's columns: a tenant's transaction
-- cannot lift its own suspension, widen its policy or move itself under another parent.
--
-- The source of the function: tests/runtime/test_sql_sources.py checks that the migrated
-- database's function is this text. A change takes a new migration holding a frozen copy.
CREATE OR REPLACE FUNCTION organization_update(
    p_id uuid, p_name text, p_status text, p_policy jsonb)
RETURNS boolean
LANGUAGE plpgsql
-- Runs as its owner, with the system's scope only.
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF current_setting('plume.all_organizations', true) IS DISTINCT FROM 'on' THEN
        RAISE EXCEPTION 'only the operator changes an organisation'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    UPDATE public.organizations AS o
    SET name = p_name,
        status = p_status::public.organization_status,
        policy = p_policy,
        updated_at = now()
    WHERE o.id = p_id
      AND (o.kind <> 'operator' OR p_status = 'active');
    IF FOUND THEN
        RETURN true;
    END IF;
    IF EXISTS (SELECT FROM public.organizations AS o WHERE o.id = p_id) THEN
        RAISE EXCEPTION 'the operator organisation cannot be suspended'
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN false;
END
$$;
"""

# services/plume/quotas/sql/quota_split_check.sql
QUOTA_SPLIT_CHECK = r"""
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
"""

# services/plume/quotas/sql/quota_reserve.sql, before this revision
_PREVIOUS_QUOTA_RESERVE = r"""
-- quota_reserve: hold what a request may use against every quota of its organisation and of
-- the organisation's ancestors (EPCI, operator), in the windows containing p_now. Answers one
-- row: the quota that refused, or else the tightest one; no row when no quota applies.
--
-- The source of the function: tests/test_sql_sources.py checks that the migrated database's
-- function is this text. A change takes a new migration holding a frozen copy of it.
CREATE OR REPLACE FUNCTION quota_reserve(
    p_id uuid, p_organization uuid, p_now timestamptz, p_tokens numeric, p_cost numeric,
    p_expires_at timestamptz)
RETURNS TABLE (organization_id uuid, metric text, period text, quota numeric,
               window_start timestamptz, amount numeric, used numeric, reserved numeric,
               accepted boolean)
LANGUAGE plpgsql
-- Runs as its owner: the application role reads the ledger but cannot write it.
SECURITY DEFINER
SET search_path = pg_catalog, public
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
SET enable_bitmapscan = off
AS $$
-- What the options above are for:
-- * search_path: pinned, and every table schema-qualified, as befits SECURITY DEFINER.
-- * plan_cache_mode: a generic plan, planned once per connection. Re-planning these statements
--   on every call (what PostgreSQL would choose by itself here) costs more than running them.
-- * enable_seqscan, enable_bitmapscan: the ledger is read through its primary key only, whose
--   index scan visits `organization_id = ANY (...)` in ascending order. Every statement that
--   moves several ledger rows (here and in quota_settle) thus locks them in that one order,
--   and reservations and settlements never deadlock. A sequential or bitmap scan would lock
--   the rows in the order of their places on disk instead.
DECLARE
    -- The windows containing p_now. A minute is the same everywhere; a day and a month are
    -- calendar periods in Europe/Paris, daylight-saving changes included (a day of 23 or 25
    -- hours). plume.quotas.periods computes the same windows in Python, and
    -- tests/test_calendar_agreement.py checks that both agree.
    w_minute CONSTANT timestamptz := date_trunc('minute', p_now);
    w_day CONSTANT timestamptz := date_trunc('day', p_now, 'Europe/Paris');
    w_month CONSTANT timestamptz := date_trunc('month', p_now, 'Europe/Paris');
BEGIN
    -- The scope check. Row-level security does not restrict this function's owner, so it
    -- checks what the policies would: the organisation it reserves for must be in the
    -- transaction's scope (the settings plume.db.enter_tenant_context writes).
    IF NOT (current_setting('plume.all_organizations', true) = 'on'
            OR p_organization = ANY (string_to_array(
                nullif(current_setting('plume.organizations', true), ''), ',')::uuid[])) THEN
        RAISE EXCEPTION 'organisation % is outside this transaction''s scope', p_organization
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN QUERY
    -- The organisation's chain: itself, its EPCI, the operator. Read from the organisation
    -- tree here, never from the caller.
    WITH RECURSIVE chain AS (
        SELECT o.id, o.parent_id FROM public.organizations AS o WHERE o.id = p_organization
        UNION ALL
        SELECT o.id, o.parent_id FROM public.organizations AS o JOIN chain ON o.id = chain.parent_id
    ),
    -- Every level of the chain with at least one quota (a limit that is not NULL; the
    -- trigger quota_ledger_copy_limits keeps the limits in the row): its ledger row is
    -- locked, in organisation order, and its holds raised by the request's amounts, whatever
    -- they reach. The row is the one as it stands once locked, a concurrent request's change
    -- included. Whether the request fits is read from the rows this leaves (answer, below):
    -- when it does not, the caller rolls the transaction back, and the row locks have kept
    -- every other request from seeing these holds meanwhile.
    taken AS (
        UPDATE public.quota_ledger AS l SET
            reserved_requests = l.reserved_requests + 1,
            reserved_tokens = l.reserved_tokens + p_tokens,
            reserved_cost_eur = l.reserved_cost_eur + p_cost
        WHERE l.organization_id = ANY (ARRAY(SELECT chain.id FROM chain))
          AND (l.minute_requests_limit IS NOT NULL OR l.minute_tokens_limit IS NOT NULL
               OR l.minute_cost_eur_limit IS NOT NULL OR l.day_requests_limit IS NOT NULL
               OR l.day_tokens_limit IS NOT NULL OR l.day_cost_eur_limit IS NOT NULL
               OR l.month_requests_limit IS NOT NULL OR l.month_tokens_limit IS NOT NULL
               OR l.month_cost_eur_limit IS NOT NULL)
        RETURNING l.*
    ),
    -- The reservation, with the levels it holds (in organisation order), for quota_settle;
    -- none when no level has a quota.
    held AS (
        INSERT INTO public.quota_reservations
            (id, organization_id, tokens, cost_eur, holds, expires_at)
        SELECT p_id, p_organization, p_tokens, p_cost,
               array_agg(taken.organization_id ORDER BY taken.organization_id), p_expires_at
        FROM taken
        HAVING count(*) > 0
    ),
    -- One row per quota of a level that took the reservation: its limit, its window, the
    -- request's amount of its metric, the window's use and what requests in flight hold,
    -- this one included. A window's use counts only while the row is in the window of p_now:
    -- a ledger row whose window has rolled since its last settlement has used nothing yet in
    -- this one (the row's windows themselves roll forward when a request is settled).
    -- rank orders the periods: minute 1, day 2, month 3. A quota fits when its use and
    -- every hold, this request's included, stay within its limit.
    answer AS (
        SELECT t.organization_id, v.metric, v.period, v.quota, v.window_start, v.amount,
               v.used, v.reserved, v.rank, v.used + v.reserved <= v.quota AS fits
        FROM taken AS t,
        LATERAL (VALUES
            ('requests', 'minute', t.minute_requests_limit, w_minute, 1,
             CASE WHEN w_minute IS NULL OR t.minute_start >= w_minute
                  THEN t.minute_requests ELSE 0 END,
             t.reserved_requests, 1),
            ('tokens', 'minute', t.minute_tokens_limit, w_minute, p_tokens,
             CASE WHEN w_minute IS NULL OR t.minute_start >= w_minute
                  THEN t.minute_tokens ELSE 0 END,
             t.reserved_tokens, 1),
            ('cost_eur', 'minute', t.minute_cost_eur_limit, w_minute, p_cost,
             CASE WHEN w_minute IS NULL OR t.minute_start >= w_minute
                  THEN t.minute_cost_eur ELSE 0 END,
             t.reserved_cost_eur, 1),
            ('requests', 'day', t.day_requests_limit, w_day, 1,
             CASE WHEN w_day IS NULL OR t.day_start >= w_day
                  THEN t.day_requests ELSE 0 END,
             t.reserved_requests, 2),
            ('tokens', 'day', t.day_tokens_limit, w_day, p_tokens,
             CASE WHEN w_day IS NULL OR t.day_start >= w_day
                  THEN t.day_tokens ELSE 0 END,
             t.reserved_tokens, 2),
            ('cost_eur', 'day', t.day_cost_eur_limit, w_day, p_cost,
             CASE WHEN w_day IS NULL OR t.day_start >= w_day
                  THEN t.day_cost_eur ELSE 0 END,
             t.reserved_cost_eur, 2),
            ('requests', 'month', t.month_requests_limit, w_month, 1,
             CASE WHEN w_month IS NULL OR t.month_start >= w_month
                  THEN t.month_requests ELSE 0 END,
             t.reserved_requests, 3),
            ('tokens', 'month', t.month_tokens_limit, w_month, p_tokens,
             CASE WHEN w_month IS NULL OR t.month_start >= w_month
                  THEN t.month_tokens ELSE 0 END,
             t.reserved_tokens, 3),
            ('cost_eur', 'month', t.month_cost_eur_limit, w_month, p_cost,
             CASE WHEN w_month IS NULL OR t.month_start >= w_month
                  THEN t.month_cost_eur ELSE 0 END,
             t.reserved_cost_eur, 3)
        ) AS v(metric, period, quota, window_start, amount, used, reserved, rank)
        WHERE v.quota IS NOT NULL
    )
    -- The answer, one row:
    -- * if a quota does not fit (they come first: false sorts before true), the request is
    --   refused, wholly, and the answer is the refusing quota that stays shut the longest:
    --   a month's over a day's over a minute's (the highest rank first). Its reserved is
    --   given as it stood before this request, which the caller rolls back.
    -- * else the request is accepted, and the answer is the tightest quota: the least
    --   fraction of its limit remaining after the reservation (for RateLimit-* headers);
    --   between equals, the shortest period.
    SELECT q.organization_id, q.metric, q.period, q.quota, q.window_start, q.amount, q.used,
           q.reserved - CASE WHEN q.fits THEN 0 ELSE q.amount END, q.fits
    FROM answer AS q
    ORDER BY q.fits,
             CASE WHEN NOT q.fits THEN -q.rank END,
             (q.quota - q.used - q.reserved) / q.quota,
             q.rank
    LIMIT 1;
END
$$;
"""

# services/plume/quotas/sql/quota_settle.sql, before this revision
_PREVIOUS_QUOTA_SETTLE = r"""
-- quota_settle: replace what a reservation held by what its request used (zeros release it),
-- in the windows containing p_now. True when the reservation was found and settled.
--
-- The source of the function: tests/test_sql_sources.py checks that the migrated database's
-- function is this text. A change takes a new migration holding a frozen copy of it.
CREATE OR REPLACE FUNCTION quota_settle(
    p_id uuid, p_requests numeric, p_tokens numeric, p_cost numeric,
    p_organization uuid, p_now timestamptz)
RETURNS boolean
LANGUAGE plpgsql
-- Runs as its owner: the application role reads the ledger but cannot write it.
SECURITY DEFINER
SET search_path = pg_catalog, public
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
SET enable_bitmapscan = off
AS $$
-- What the options above are for (as in quota_reserve):
-- * search_path: pinned, and every table schema-qualified, as befits SECURITY DEFINER.
-- * plan_cache_mode: a generic plan, planned once per connection, costs less than
--   re-planning on every call.
-- * enable_seqscan, enable_bitmapscan: the ledger is read through its primary key only, whose
--   index scan visits `organization_id = ANY (...)` in ascending order, so the ledger rows of
--   a chain are locked in organisation order, as quota_reserve locks them: reservations and
--   settlements never deadlock.
--
-- A settlement charges p_requests, p_tokens and p_cost to every window (minute, day, month)
-- of each level, and a window that has rolled since the row's last move starts from zero.
-- Without a time (p_now NULL, as the sweep releases), the windows stay as they stand:
-- greatest() ignores NULL.
DECLARE
    -- The windows containing p_now: a minute; a day and a month in Europe/Paris, as in
    -- quota_reserve (and plume.quotas.periods).
    w_minute CONSTANT timestamptz := date_trunc('minute', p_now);
    w_day CONSTANT timestamptz := date_trunc('day', p_now, 'Europe/Paris');
    w_month CONSTANT timestamptz := date_trunc('month', p_now, 'Europe/Paris');
    moved integer;
BEGIN
    -- The reservation, gone for good: a reservation already settled or swept is not found,
    -- so nothing is settled twice. Only a reservation of an organisation in the
    -- transaction's scope is found (the scope check, as the row-level policies would).
    -- Each level it holds gives back the request's holds and takes what was used, in the
    -- one statement, its rows locked in organisation order.
    WITH gone AS (
        DELETE FROM public.quota_reservations AS r
        WHERE r.id = p_id
          AND (current_setting('plume.all_organizations', true) = 'on'
               OR r.organization_id = ANY (string_to_array(
                   nullif(current_setting('plume.organizations', true), ''), ',')::uuid[]))
        RETURNING r.tokens, r.cost_eur, r.holds
    )
    UPDATE public.quota_ledger AS l SET
        minute_start = greatest(l.minute_start, w_minute),
        day_start = greatest(l.day_start, w_day),
        month_start = greatest(l.month_start, w_month),
        minute_requests = CASE WHEN w_minute IS NULL OR l.minute_start >= w_minute
                               THEN l.minute_requests ELSE 0 END + p_requests,
        minute_tokens = CASE WHEN w_minute IS NULL OR l.minute_start >= w_minute
                             THEN l.minute_tokens ELSE 0 END + p_tokens,
        minute_cost_eur = CASE WHEN w_minute IS NULL OR l.minute_start >= w_minute
                               THEN l.minute_cost_eur ELSE 0 END + p_cost,
        day_requests = CASE WHEN w_day IS NULL OR l.day_start >= w_day
                            THEN l.day_requests ELSE 0 END + p_requests,
        day_tokens = CASE WHEN w_day IS NULL OR l.day_start >= w_day
                          THEN l.day_tokens ELSE 0 END + p_tokens,
        day_cost_eur = CASE WHEN w_day IS NULL OR l.day_start >= w_day
                            THEN l.day_cost_eur ELSE 0 END + p_cost,
        month_requests = CASE WHEN w_month IS NULL OR l.month_start >= w_month
                              THEN l.month_requests ELSE 0 END + p_requests,
        month_tokens = CASE WHEN w_month IS NULL OR l.month_start >= w_month
                            THEN l.month_tokens ELSE 0 END + p_tokens,
        month_cost_eur = CASE WHEN w_month IS NULL OR l.month_start >= w_month
                              THEN l.month_cost_eur ELSE 0 END + p_cost,
        reserved_requests = l.reserved_requests - 1,
        reserved_tokens = l.reserved_tokens - gone.tokens,
        reserved_cost_eur = l.reserved_cost_eur - gone.cost_eur
    FROM gone
    WHERE l.organization_id = ANY (gone.holds);
    GET DIAGNOSTICS moved = ROW_COUNT;
    -- Settled; or nothing to charge (a release, a request not charged) and nothing held.
    IF moved > 0 OR p_requests = 0 THEN
        RETURN moved > 0;
    END IF;
    -- A charged request whose reservation is gone (swept after its TTL, or lost with the
    -- asynchronous commit of its reservation) is charged all the same, to its chain as it
    -- stands now: it has happened. The organisation must be in the transaction's scope.
    IF NOT (current_setting('plume.all_organizations', true) = 'on'
            OR p_organization = ANY (string_to_array(
                nullif(current_setting('plume.organizations', true), ''), ',')::uuid[])) THEN
        RAISE EXCEPTION 'organisation % is outside this transaction''s scope', p_organization
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    -- Every level of the chain (itself, its EPCI, the operator) that has a quota, its row
    -- locked in organisation order.
    UPDATE public.quota_ledger AS l SET
        minute_start = greatest(l.minute_start, w_minute),
        day_start = greatest(l.day_start, w_day),
        month_start = greatest(l.month_start, w_month),
        minute_requests = CASE WHEN w_minute IS NULL OR l.minute_start >= w_minute
                               THEN l.minute_requests ELSE 0 END + p_requests,
        minute_tokens = CASE WHEN w_minute IS NULL OR l.minute_start >= w_minute
                             THEN l.minute_tokens ELSE 0 END + p_tokens,
        minute_cost_eur = CASE WHEN w_minute IS NULL OR l.minute_start >= w_minute
                               THEN l.minute_cost_eur ELSE 0 END + p_cost,
        day_requests = CASE WHEN w_day IS NULL OR l.day_start >= w_day
                            THEN l.day_requests ELSE 0 END + p_requests,
        day_tokens = CASE WHEN w_day IS NULL OR l.day_start >= w_day
                          THEN l.day_tokens ELSE 0 END + p_tokens,
        day_cost_eur = CASE WHEN w_day IS NULL OR l.day_start >= w_day
                            THEN l.day_cost_eur ELSE 0 END + p_cost,
        month_requests = CASE WHEN w_month IS NULL OR l.month_start >= w_month
                              THEN l.month_requests ELSE 0 END + p_requests,
        month_tokens = CASE WHEN w_month IS NULL OR l.month_start >= w_month
                            THEN l.month_tokens ELSE 0 END + p_tokens,
        month_cost_eur = CASE WHEN w_month IS NULL OR l.month_start >= w_month
                              THEN l.month_cost_eur ELSE 0 END + p_cost
    WHERE l.organization_id = ANY (ARRAY(
        WITH RECURSIVE chain AS (
            SELECT o.id, o.parent_id FROM public.organizations AS o
            WHERE o.id = p_organization
            UNION ALL
            SELECT o.id, o.parent_id FROM public.organizations AS o
            JOIN chain ON o.id = chain.parent_id
        ) SELECT chain.id FROM chain))
      AND (l.minute_requests_limit IS NOT NULL OR l.minute_tokens_limit IS NOT NULL
           OR l.minute_cost_eur_limit IS NOT NULL OR l.day_requests_limit IS NOT NULL
           OR l.day_tokens_limit IS NOT NULL OR l.day_cost_eur_limit IS NOT NULL
           OR l.month_requests_limit IS NOT NULL OR l.month_tokens_limit IS NOT NULL
           OR l.month_cost_eur_limit IS NOT NULL);
    RETURN false;
END
$$;
"""

# services/plume/quotas/sql/quota_extend.sql, before this revision
_PREVIOUS_QUOTA_EXTEND = r"""
-- quota_extend: a synthese accepted as a job keeps its reservation until the job ends; this
-- moves the reservation's expiry, so that the sweep leaves it alone meanwhile.
--
-- The source of the function: tests/test_sql_sources.py checks that the migrated database's
-- function is this text. A change takes a new migration holding a frozen copy of it.
CREATE OR REPLACE FUNCTION quota_extend(p_id uuid, p_expires_at timestamptz)
RETURNS void
LANGUAGE plpgsql
-- Runs as its owner: the application role cannot write reservations.
SECURITY DEFINER
SET search_path = pg_catalog, public
SET plan_cache_mode = force_generic_plan
AS $$
-- search_path pinned and tables schema-qualified, as befits SECURITY DEFINER; a generic
-- plan, planned once per connection.
BEGIN
    -- The scope check: only a reservation of an organisation in the transaction's scope is
    -- extended (another one is left as it is, silently), as the row-level policies would.
    UPDATE public.quota_reservations AS r SET expires_at = p_expires_at
    WHERE r.id = p_id
      AND (current_setting('plume.all_organizations', true) = 'on'
           OR r.organization_id = ANY (string_to_array(
               nullif(current_setting('plume.organizations', true), ''), ',')::uuid[]));
END
$$;
"""

# services/plume/quotas/sql/quota_release_expired.sql, before this revision
_PREVIOUS_QUOTA_RELEASE_EXPIRED = r"""
-- quota_release_expired: release, one by one, at most p_batch reservations that expired
-- before p_now (their request died with its process); returns how many. The sweeper
-- (plume.quotas.sweeper) calls it with the system's scope.
--
-- The source of the function: tests/test_sql_sources.py checks that the migrated database's
-- function is this text. A change takes a new migration holding a frozen copy of it.
CREATE OR REPLACE FUNCTION quota_release_expired(p_now timestamptz, p_batch integer)
RETURNS integer
LANGUAGE plpgsql
-- Runs as its owner: the application role cannot write reservations or the ledger.
SECURITY DEFINER
SET search_path = pg_catalog, public
AS $$
DECLARE
    due record;
    released integer := 0;
BEGIN
    -- The scope check: only the system's sweep, whose scope is every organisation, may
    -- release reservations that are not its own.
    IF current_setting('plume.all_organizations', true) IS DISTINCT FROM 'on' THEN
        RAISE EXCEPTION 'only the system sweeps reservations'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    -- The oldest first. SKIP LOCKED: a reservation being settled right now, or taken by the
    -- sweep of another process, is left to it.
    FOR due IN
        SELECT r.id FROM public.quota_reservations AS r
        WHERE r.expires_at < p_now
        ORDER BY r.expires_at
        LIMIT p_batch
        FOR UPDATE SKIP LOCKED
    LOOP
        -- A release: nothing used, no time (the windows stay as they stand); its holds are
        -- given back. Should the request settle later after all, quota_settle finds no
        -- reservation and charges its chain all the same.
        PERFORM public.quota_settle(due.id, 0, 0, 0, NULL, NULL);
        released := released + 1;
    END LOOP;
    RETURN released;
END
$$;
"""

# services/plume/quotas/sql/quota_ledger_copy_limits.sql, before this revision
_PREVIOUS_QUOTA_LEDGER_COPY_LIMITS = r"""
-- quota_ledger_copy_limits: the trigger (quotas_copy_limits, AFTER INSERT OR UPDATE OR DELETE
-- ON quotas, FOR EACH ROW) that copies an organisation's limits into its ledger row whenever
-- one of its quotas changes, creating the row if need be.
--
-- The source of the function: tests/test_sql_sources.py checks that the migrated database's
-- function is this text. A change takes a new migration holding a frozen copy of it.
CREATE OR REPLACE FUNCTION quota_ledger_copy_limits()
RETURNS trigger
LANGUAGE plpgsql
-- Runs as its owner: the application role, which may write quotas (under their row-level
-- policies), cannot write the ledger itself.
SECURITY DEFINER
SET search_path = pg_catalog, public
AS $$
-- Each ledger row holds its organisation's limits, one column per period and metric (NULL:
-- no such quota), so that quota_reserve compares columns with columns instead of reading
-- and matching the quotas on every request. The limits are recomputed from all of the
-- organisation's quotas, not patched from the row that changed. A row created here has
-- windows long past (1970): the first request's settlement rolls them to its own.
BEGIN
    -- The organisation a quota left (deleted, or moved to another): once, not twice.
    IF TG_OP = 'DELETE'
       OR (TG_OP = 'UPDATE' AND OLD.organization_id <> NEW.organization_id) THEN
        INSERT INTO public.quota_ledger AS l
            (organization_id, minute_start, day_start, month_start,
             minute_requests_limit, minute_tokens_limit, minute_cost_eur_limit,
             day_requests_limit, day_tokens_limit, day_cost_eur_limit,
             month_requests_limit, month_tokens_limit, month_cost_eur_limit)
        SELECT o.id, '1970-01-01 00:00:00+00'::timestamptz,
               '1970-01-01 00:00:00+00'::timestamptz, '1970-01-01 00:00:00+00'::timestamptz,
               max(q."limit") FILTER (WHERE q.period = 'minute' AND q.metric = 'requests'),
               max(q."limit") FILTER (WHERE q.period = 'minute' AND q.metric = 'tokens'),
               max(q."limit") FILTER (WHERE q.period = 'minute' AND q.metric = 'cost_eur'),
               max(q."limit") FILTER (WHERE q.period = 'day' AND q.metric = 'requests'),
               max(q."limit") FILTER (WHERE q.period = 'day' AND q.metric = 'tokens'),
               max(q."limit") FILTER (WHERE q.period = 'day' AND q.metric = 'cost_eur'),
               max(q."limit") FILTER (WHERE q.period = 'month' AND q.metric = 'requests'),
               max(q."limit") FILTER (WHERE q.period = 'month' AND q.metric = 'tokens'),
               max(q."limit") FILTER (WHERE q.period = 'month' AND q.metric = 'cost_eur')
        FROM public.organizations AS o
        LEFT JOIN public.quotas AS q ON q.organization_id = o.id
        WHERE o.id = OLD.organization_id
        GROUP BY o.id
        ON CONFLICT ON CONSTRAINT quota_ledger_pkey DO UPDATE SET
            minute_requests_limit = excluded.minute_requests_limit,
            minute_tokens_limit = excluded.minute_tokens_limit,
            minute_cost_eur_limit = excluded.minute_cost_eur_limit,
            day_requests_limit = excluded.day_requests_limit,
            day_tokens_limit = excluded.day_tokens_limit,
            day_cost_eur_limit = excluded.day_cost_eur_limit,
            month_requests_limit = excluded.month_requests_limit,
            month_tokens_limit = excluded.month_tokens_limit,
            month_cost_eur_limit = excluded.month_cost_eur_limit;
    END IF;
    -- The organisation a quota belongs to now (inserted or updated).
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO public.quota_ledger AS l
            (organization_id, minute_start, day_start, month_start,
             minute_requests_limit, minute_tokens_limit, minute_cost_eur_limit,
             day_requests_limit, day_tokens_limit, day_cost_eur_limit,
             month_requests_limit, month_tokens_limit, month_cost_eur_limit)
        SELECT o.id, '1970-01-01 00:00:00+00'::timestamptz,
               '1970-01-01 00:00:00+00'::timestamptz, '1970-01-01 00:00:00+00'::timestamptz,
               max(q."limit") FILTER (WHERE q.period = 'minute' AND q.metric = 'requests'),
               max(q."limit") FILTER (WHERE q.period = 'minute' AND q.metric = 'tokens'),
               max(q."limit") FILTER (WHERE q.period = 'minute' AND q.metric = 'cost_eur'),
               max(q."limit") FILTER (WHERE q.period = 'day' AND q.metric = 'requests'),
               max(q."limit") FILTER (WHERE q.period = 'day' AND q.metric = 'tokens'),
               max(q."limit") FILTER (WHERE q.period = 'day' AND q.metric = 'cost_eur'),
               max(q."limit") FILTER (WHERE q.period = 'month' AND q.metric = 'requests'),
               max(q."limit") FILTER (WHERE q.period = 'month' AND q.metric = 'tokens'),
               max(q."limit") FILTER (WHERE q.period = 'month' AND q.metric = 'cost_eur')
        FROM public.organizations AS o
        LEFT JOIN public.quotas AS q ON q.organization_id = o.id
        WHERE o.id = NEW.organization_id
        GROUP BY o.id
        ON CONFLICT ON CONSTRAINT quota_ledger_pkey DO UPDATE SET
            minute_requests_limit = excluded.minute_requests_limit,
            minute_tokens_limit = excluded.minute_tokens_limit,
            minute_cost_eur_limit = excluded.minute_cost_eur_limit,
            day_requests_limit = excluded.day_requests_limit,
            day_tokens_limit = excluded.day_tokens_limit,
            day_cost_eur_limit = excluded.day_cost_eur_limit,
            month_requests_limit = excluded.month_requests_limit,
            month_tokens_limit = excluded.month_tokens_limit,
            month_cost_eur_limit = excluded.month_cost_eur_limit;
    END IF;
    -- An AFTER trigger: the value returned is ignored.
    RETURN NULL;
END
$$;
"""

# services/plume/audit/sql/audit_append.sql, before this revision
_PREVIOUS_AUDIT_APPEND = r"""
-- Appends one entry to an organisation's audit chain, in the caller's transaction, and
-- answers its sequence number and hash. The hashing rule (docs/audit.md):
--     hash = SHA-256(seq || '\n' || prev_hash || '\n' || body), hex; the first prev_hash
--     is 64 zeros.
-- Invoker's rights: the application role appends under row-level security.
CREATE OR REPLACE FUNCTION audit_append(
    p_organization uuid, p_occurred_at timestamptz, p_action text, p_actor_key_id uuid,
    p_actor_role text, p_body text)
RETURNS TABLE (entry_seq bigint, entry_hash text)
LANGUAGE plpgsql SET search_path = pg_catalog, public SET plan_cache_mode = force_generic_plan
AS $$
BEGIN
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
"""

# services/plume/audit/sql/audit_entries_append_only.sql, before this revision
_PREVIOUS_AUDIT_ENTRIES_APPEND_ONLY = r"""
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
"""

# (signature, statement, whether the application role may call it)
_FUNCTIONS = [
    ("quota_reserve(uuid, uuid, timestamptz, numeric, numeric, timestamptz)", QUOTA_RESERVE, True),
    ("quota_settle(uuid, numeric, numeric, numeric, uuid, timestamptz)", QUOTA_SETTLE, True),
    ("quota_extend(uuid, timestamptz)", QUOTA_EXTEND, True),
    ("quota_release_expired(timestamptz, integer)", QUOTA_RELEASE_EXPIRED, True),
    ("quota_ledger_copy_limits()", QUOTA_LEDGER_COPY_LIMITS, False),
    ("audit_append(uuid, timestamptz, text, uuid, text, text)", AUDIT_APPEND, True),
    ("audit_entries_append_only()", AUDIT_ENTRIES_APPEND_ONLY, False),
    ("api_key_lookup(text[], text)", API_KEY_LOOKUP, True),
    ("api_key_revoke(uuid)", API_KEY_REVOKE, True),
    ("organization_update(uuid, text, text, jsonb)", ORGANIZATION_UPDATE, True),
    ("quota_split_check()", QUOTA_SPLIT_CHECK, False),
]

_PREVIOUS_FUNCTIONS = [
    (
        "quota_reserve(uuid, uuid, timestamptz, numeric, numeric, timestamptz)",
        _PREVIOUS_QUOTA_RESERVE,
        True,
    ),
    (
        "quota_settle(uuid, numeric, numeric, numeric, uuid, timestamptz)",
        _PREVIOUS_QUOTA_SETTLE,
        True,
    ),
    ("quota_extend(uuid, timestamptz)", _PREVIOUS_QUOTA_EXTEND, True),
    ("quota_release_expired(timestamptz, integer)", _PREVIOUS_QUOTA_RELEASE_EXPIRED, True),
    ("quota_ledger_copy_limits()", _PREVIOUS_QUOTA_LEDGER_COPY_LIMITS, False),
    ("audit_append(uuid, timestamptz, text, uuid, text, text)", _PREVIOUS_AUDIT_APPEND, True),
    ("audit_entries_append_only()", _PREVIOUS_AUDIT_ENTRIES_APPEND_ONLY, False),
]

_NEW_FUNCTIONS = [signature for signature, _, _ in _FUNCTIONS[len(_PREVIOUS_FUNCTIONS) :]]

_SPLIT_TRIGGER = (
    "CREATE TRIGGER quotas_split_check BEFORE INSERT OR UPDATE OR DELETE ON quotas"
    " FOR EACH ROW EXECUTE FUNCTION quota_split_check()"
)


def _install(functions: list[tuple[str, str, bool]]) -> None:
    for signature, statement, granted in functions:
        op.execute(statement)
        op.execute(f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC")
        if granted:
            op.execute(f"GRANT EXECUTE ON FUNCTION {signature} TO plume_app")


def upgrade() -> None:
    _install(_FUNCTIONS)
    op.execute(_SPLIT_TRIGGER)


def downgrade() -> None:
    op.execute("DROP TRIGGER quotas_split_check ON quotas")
    for signature in _NEW_FUNCTIONS:
        op.execute(f"DROP FUNCTION {signature}")
    _install(_PREVIOUS_FUNCTIONS)
