"""All SQL of the provider-call unit of work: the Idempotency-Key's claim and stored answer,
and the settlement statement."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from sqlalchemy import delete, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from plume.audit.repository import NewEntry
from plume.db import (
    TENANT_CONTEXT,
    TenantScope,
    driver_sql,
    pipelined_transaction,
    tenant_context_parameters,
)
from plume.models import IdempotencyKey, UsageRecord
from plume.quotas.repository import LedgerMove

# Claims the key, or takes over one that expired or whose request died unanswered. The
# claim is committed durably, although the reservation beside it is not (its transaction
# set synchronous_commit off, plume.quotas.repository): a claim lost in a crash of the
# database would let a retry call the provider a second time. The setting is read at commit,
# and set here by the statement itself, without a round trip of its own.
_CLAIM = text("""
INSERT INTO idempotency_keys AS k
    (organization_id, key, request_hash, locked_until, expires_at, created_at)
SELECT :organization_id, :key, :request_hash, :locked_until, :expires_at, :now
FROM (SELECT set_config('synchronous_commit', 'on', true)) AS durable
ON CONFLICT (organization_id, key) DO UPDATE
    SET request_hash = excluded.request_hash, status_code = NULL, content_type = NULL,
        body = NULL, headers = NULL, locked_until = excluded.locked_until,
        expires_at = excluded.expires_at, created_at = excluded.created_at
    WHERE k.expires_at <= :now
       OR (k.status_code IS NULL AND k.locked_until <= :now
           AND k.request_hash = excluded.request_hash)
RETURNING true
""")


class IdempotencyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def claim(
        self,
        organization_id: uuid.UUID,
        key: str,
        request_hash: str,
        *,
        now: datetime,
        locked_until: datetime,
        expires_at: datetime,
    ) -> bool:
        claimed = await self.session.scalar(
            _CLAIM,
            {
                "organization_id": organization_id,
                "key": key,
                "request_hash": request_hash,
                "locked_until": locked_until,
                "expires_at": expires_at,
                "now": now,
            },
        )
        return bool(claimed)

    async def get(self, organization_id: uuid.UUID, key: str) -> IdempotencyKey | None:
        return await self.session.scalar(
            select(IdempotencyKey).where(
                IdempotencyKey.organization_id == organization_id, IdempotencyKey.key == key
            )
        )

    async def answer(
        self,
        organization_id: uuid.UUID,
        key: str,
        request_hash: str,
        *,
        status_code: int,
        content_type: str,
        body: bytes,
        headers: dict[str, str],
    ) -> None:
        """Keep the first answer for the key's retries."""
        await self.session.execute(
            update(IdempotencyKey)
            .where(*_unanswered(organization_id, key, request_hash))
            .values(status_code=status_code, content_type=content_type, body=body, headers=headers)
        )

    async def forget(self, organization_id: uuid.UUID, key: str, request_hash: str) -> None:
        """Free the key of a request that got no answer to keep: a retry runs it again."""
        await self.session.execute(
            delete(IdempotencyKey).where(*_unanswered(organization_id, key, request_hash))
        )

    async def forget_expired(self, now: datetime) -> None:
        await self.session.execute(delete(IdempotencyKey).where(IdempotencyKey.expires_at <= now))


def _unanswered(organization_id: uuid.UUID, key: str, request_hash: str) -> tuple[Any, ...]:
    return (
        IdempotencyKey.organization_id == organization_id,
        IdempotencyKey.key == key,
        IdempotencyKey.request_hash == request_hash,
        IdempotencyKey.status_code.is_(None),
    )


# One statement (one round trip) writes a settled call's usage record, moves the quota
# ledger (when the request held a reservation) and appends the audit entry (with the
# caller's full address, kept apart from the hashed body). The ledger's
# function runs as a MATERIALIZED common table expression that the final SELECT reads, so
# that PostgreSQL evaluates it exactly once; the usage record's INSERT runs whether read or
# not, as every data-modifying WITH does.
_SETTLE = text("""
WITH usage AS (
    INSERT INTO usage_records
        (id, organization_id, api_key_id, request_id, kind, model_group, provider, model,
         outcome, error_code, prompt_tokens, completion_tokens, cost_eur, latency_ms,
         ttft_ms, fallbacks, energy_kwh, gwp_kgco2eq, charged)
    VALUES
        (:usage_id, :usage_organization_id, :usage_api_key_id, :usage_request_id,
         :usage_kind, :usage_model_group, :usage_provider, :usage_model, :usage_outcome,
         :usage_error_code, :usage_prompt_tokens, :usage_completion_tokens, :usage_cost_eur,
         :usage_latency_ms, :usage_ttft_ms, :usage_fallbacks, :usage_energy_kwh,
         :usage_gwp_kgco2eq, :usage_charged)
),
ledger AS MATERIALIZED (
    SELECT quota_settle(CAST(:quota_id AS uuid), CAST(:quota_requests AS numeric),
                        CAST(:quota_tokens AS numeric), CAST(:quota_cost AS numeric),
                        CAST(:quota_organization_id AS uuid), CAST(:quota_now AS timestamptz))
    WHERE CAST(:quota_id AS uuid) IS NOT NULL
),
entry AS MATERIALIZED (
    SELECT entry_seq, entry_hash
    FROM audit_append(CAST(:organization_id AS uuid), CAST(:occurred_at AS timestamptz),
                      CAST(:action AS text), CAST(:actor_key_id AS uuid),
                      CAST(:actor_role AS text), CAST(:body AS text))
),
address AS (
    INSERT INTO audit_client_addresses (organization_id, seq, client_address, recorded_at)
    SELECT CAST(:organization_id AS uuid), entry.entry_seq, CAST(:client_address AS text),
           CAST(:occurred_at AS timestamptz)
    FROM entry
    WHERE CAST(:client_address AS text) IS NOT NULL
)
SELECT entry.entry_seq, entry.entry_hash
FROM entry
LEFT JOIN ledger ON true
""")


@dataclass(frozen=True, slots=True)
class UsageRow:
    """One row of usage_records: what a settled request consumed."""

    id: uuid.UUID
    organization_id: uuid.UUID
    api_key_id: uuid.UUID | None
    request_id: str | None
    kind: str
    model_group: str
    provider: str | None
    model: str | None
    outcome: str
    error_code: str | None
    prompt_tokens: int
    completion_tokens: int
    cost_eur: Any
    latency_ms: int
    ttft_ms: int | None
    fallbacks: int
    energy_kwh: float | None
    gwp_kgco2eq: float | None
    charged: bool


# The same statement with psycopg's placeholders, for a connection used without a session.
_SETTLE_ON_DRIVER = driver_sql(_SETTLE)


def _settle_parameters(usage: UsageRow, move: LedgerMove | None, entry: NewEntry) -> dict[str, Any]:
    parameters: dict[str, Any] = {
        f"usage_{name}": getattr(usage, name) for name in UsageRow.__dataclass_fields__
    }
    ledger = move.parameters() if move is not None else LedgerMove.none()
    parameters.update({f"quota_{name}": value for name, value in ledger.items()})
    parameters.update(entry.parameters())
    parameters["client_address"] = entry.client_address
    return parameters


class SettlementRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def write(self, usage: UsageRow, move: LedgerMove | None, entry: NewEntry) -> None:
        await self.session.execute(_SETTLE, _settle_parameters(usage, move, entry))

    async def recorded(self, usage_id: uuid.UUID) -> bool:
        """Whether the settlement whose usage record has this id committed."""
        found = await self.session.scalar(select(UsageRecord.id).where(UsageRecord.id == usage_id))
        return found is not None


async def settle_in_one_round_trip(
    driver: psycopg.AsyncConnection[Any],
    scope: TenantScope,
    usage: UsageRow,
    move: LedgerMove | None,
    entry: NewEntry,
) -> None:
    """A settlement that is its statement alone (nothing stored beside it, no key to answer
    or free), in its own transaction on `driver` (a `pooled_driver_connection`): `BEGIN`,
    the tenant context, the statement and `COMMIT` pipelined, sent together and answered
    together — one round trip where a session takes four. The same rows, the same row
    security, committed as durably."""
    async with pipelined_transaction(driver):
        await driver.execute(TENANT_CONTEXT, tenant_context_parameters(scope))
        await driver.execute(_SETTLE_ON_DRIVER, _settle_parameters(usage, move, entry))
