"""The quota ledger in SQL: reserve, settle, sweep. Each is one statement, atomic in
PostgreSQL, with no read-then-write race.

Counter rows are locked in one order everywhere (organisation, metric, period, window), so
concurrent reservations and settlements touching a commune and its EPCI never deadlock.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

_RESERVE = text("""
WITH wanted AS MATERIALIZED (
    SELECT q.organization_id, q.metric, q.period, q."limit",
           CASE q.period WHEN 'minute' THEN CAST(:w_minute AS timestamptz)
                         WHEN 'day' THEN CAST(:w_day AS timestamptz)
                         ELSE CAST(:w_month AS timestamptz) END AS window_start,
           CASE q.metric WHEN 'requests' THEN CAST(1 AS numeric)
                         WHEN 'tokens' THEN CAST(:tokens AS numeric)
                         ELSE CAST(:cost AS numeric) END AS amount
    FROM quotas AS q
    WHERE q.organization_id = ANY (CAST(:chain AS uuid[]))
),
taken AS (
    INSERT INTO quota_counters AS c (organization_id, metric, period, window_start, used, reserved)
    SELECT organization_id, metric, period, window_start, 0, amount
    FROM wanted
    WHERE amount <= "limit"
    ORDER BY organization_id, metric, period
    ON CONFLICT (organization_id, metric, period, window_start) DO UPDATE
        SET reserved = c.reserved + excluded.reserved
        WHERE c.used + c.reserved + excluded.reserved <= (
            SELECT q."limit" FROM quotas AS q
            WHERE q.organization_id = c.organization_id
              AND q.metric = c.metric AND q.period = c.period)
    RETURNING c.organization_id, c.metric, c.period, c.window_start, c.used, c.reserved
),
held AS (
    INSERT INTO quota_reservations (id, organization_id, tokens, cost_eur, holds, expires_at)
    SELECT :id, :organization_id, :tokens, :cost,
           jsonb_agg(jsonb_build_array(organization_id, metric, period, window_start)),
           :expires_at
    FROM taken
    HAVING count(*) > 0
    RETURNING id
)
SELECT w.organization_id, w.metric, w.period, w."limit", w.window_start, w.amount,
       t.used, t.reserved
FROM wanted AS w
LEFT JOIN taken AS t USING (organization_id, metric, period)
""")

# Settles (or releases, with zero use) reservations; a reservation already settled or
# swept is gone, so nothing is ever settled twice.
_SETTLE = text("""
WITH released AS (
    DELETE FROM quota_reservations
    WHERE id = ANY (CAST(:ids AS uuid[]))
    RETURNING tokens, cost_eur, holds
),
held AS (
    SELECT CAST(h ->> 0 AS uuid) AS organization_id, h ->> 1 AS metric, h ->> 2 AS period,
           CAST(h ->> 3 AS timestamptz) AS window_start,
           sum(CASE h ->> 1 WHEN 'requests' THEN 1 WHEN 'tokens' THEN r.tokens
                            ELSE r.cost_eur END) AS amount
    FROM released AS r, jsonb_array_elements(r.holds) AS h
    GROUP BY 1, 2, 3, 4
),
locked AS MATERIALIZED (
    SELECT c.organization_id, c.metric, c.period, c.window_start
    FROM quota_counters AS c
    JOIN held USING (organization_id, metric, period, window_start)
    ORDER BY c.organization_id, c.metric, c.period, c.window_start
    FOR UPDATE OF c
)
UPDATE quota_counters AS c
SET reserved = c.reserved - held.amount,
    used = c.used + CASE c.metric WHEN 'requests' THEN CAST(:requests AS numeric)
                                  WHEN 'tokens' THEN CAST(:tokens AS numeric)
                                  ELSE CAST(:cost AS numeric) END
FROM held
JOIN locked USING (organization_id, metric, period, window_start)
WHERE c.organization_id = held.organization_id AND c.metric = held.metric
  AND c.period = held.period AND c.window_start = held.window_start
""")

# A request whose reservation is gone (swept after its TTL, or lost with an asynchronous
# commit in a database crash) is still charged, against the current windows, unconditionally:
# it has happened.
_CHARGE = text("""
INSERT INTO quota_counters AS c (organization_id, metric, period, window_start, used, reserved)
SELECT q.organization_id, q.metric, q.period,
       CASE q.period WHEN 'minute' THEN CAST(:w_minute AS timestamptz)
                     WHEN 'day' THEN CAST(:w_day AS timestamptz)
                     ELSE CAST(:w_month AS timestamptz) END,
       CASE q.metric WHEN 'requests' THEN CAST(:requests AS numeric)
                     WHEN 'tokens' THEN CAST(:tokens AS numeric)
                     ELSE CAST(:cost AS numeric) END,
       0
FROM quotas AS q
WHERE q.organization_id = ANY (CAST(:chain AS uuid[]))
ORDER BY q.organization_id, q.metric, q.period
ON CONFLICT (organization_id, metric, period, window_start) DO UPDATE
    SET used = c.used + excluded.used
""")

_EXPIRED = text("""
SELECT id FROM quota_reservations
WHERE expires_at < :now
ORDER BY expires_at
LIMIT :batch
FOR UPDATE SKIP LOCKED
""")

_EXTEND = text("UPDATE quota_reservations SET expires_at = :expires_at WHERE id = :id")

# Minute windows are only needed while they can be settled; days and months are kept as
# the ledger's history.
_FORGET_MINUTES = text("""
DELETE FROM quota_counters
WHERE period = 'minute' AND reserved = 0 AND window_start < :before
""")


@dataclass(frozen=True, slots=True)
class Reserved:
    """One quota the request counts against, and whether the reservation fitted."""

    organization_id: uuid.UUID
    metric: str
    period: str
    limit: Decimal
    window_start: datetime
    amount: Decimal
    # None when this quota refused the request.
    used: Decimal | None
    reserved: Decimal | None

    @property
    def fitted(self) -> bool:
        return self.used is not None


async def reserve(
    session: AsyncSession,
    *,
    reservation_id: uuid.UUID,
    organization_id: uuid.UUID,
    chain: list[uuid.UUID],
    windows: dict[str, datetime],
    tokens: int,
    cost: Decimal,
    expires_at: datetime,
) -> list[Reserved]:
    """Reserve against every quota of the chain; the caller rolls back if one refused."""
    result = await session.execute(
        _RESERVE,
        {
            "id": reservation_id,
            "organization_id": organization_id,
            "chain": chain,
            "w_minute": windows["minute"],
            "w_day": windows["day"],
            "w_month": windows["month"],
            "tokens": tokens,
            "cost": cost,
            "expires_at": expires_at,
        },
    )
    return [Reserved(*row) for row in result.all()]


async def settle(
    session: AsyncSession,
    reservation_ids: list[uuid.UUID],
    *,
    requests: int = 0,
    tokens: int = 0,
    cost: Decimal = Decimal(0),
) -> bool:
    """Replace what was reserved by what was used (zero to release); False when no
    reservation was found (already settled, swept or lost)."""
    result = await session.execute(
        _SETTLE,
        {"ids": reservation_ids, "requests": requests, "tokens": tokens, "cost": cost},
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def charge(
    session: AsyncSession,
    *,
    chain: list[uuid.UUID],
    windows: dict[str, datetime],
    requests: int,
    tokens: int,
    cost: Decimal,
) -> None:
    """Add use to the current windows of every quota of the chain, without a reservation."""
    await session.execute(
        _CHARGE,
        {
            "chain": chain,
            "w_minute": windows["minute"],
            "w_day": windows["day"],
            "w_month": windows["month"],
            "requests": requests,
            "tokens": tokens,
            "cost": cost,
        },
    )


async def extend(session: AsyncSession, reservation_id: uuid.UUID, expires_at: datetime) -> None:
    await session.execute(_EXTEND, {"id": reservation_id, "expires_at": expires_at})


async def release_expired(session: AsyncSession, now: datetime, batch: int = 500) -> int:
    """Release reservations whose request died with its process; returns how many."""
    ids = list((await session.execute(_EXPIRED, {"now": now, "batch": batch})).scalars())
    if ids:
        await settle(session, ids)
    return len(ids)


async def forget_old_minutes(session: AsyncSession, before: datetime) -> None:
    await session.execute(_FORGET_MINUTES, {"before": before})
