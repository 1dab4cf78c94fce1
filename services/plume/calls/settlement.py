"""What a provider call leaves in the database, before and after the provider works.

Before (the request's first transaction): the tenant context and the quota reservation in
one statement, then the Idempotency-Key's claim. After (the settlement transaction): the
answer kept for the key's retries, or the key freed; then one statement for the usage
record, the quota ledger's move and the audit entry (`SettlementRepository`). A request
accepted as a job keeps its reservation, records no usage yet, and its entry says
`accepted`.

Quotas, idempotency, usage and audit each contribute data here; this module alone decides
what is written.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import psycopg
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from plume.audit.trail import Actor, NewEntry, append, entry
from plume.calls.context import CHAT_KIND, CallOutcome, StoredResponse
from plume.calls.idempotency import IdempotentReplay
from plume.calls.repository import (
    IdempotencyRepository,
    SettlementRepository,
    UsageRow,
    settle_in_one_round_trip,
)
from plume.dates import Clock
from plume.db import pooled_driver_connection, pooled_engine
from plume.errors import IdempotencyInProgress, IdempotencyMismatch
from plume.hashing import digest
from plume.quotas.guard import QuotaGuard, Reservation
from plume.routing.policy import RoutingPolicy
from plume.web.transaction import FirstConnection

if TYPE_CHECKING:
    from plume.calls.unit import ProviderCall
    from plume.quotas.repository import LedgerMove

# An Idempotency-Key is kept this long after its request.
KEEP_FOR = timedelta(hours=24)


class Settlement:
    def __init__(
        self,
        policy: RoutingPolicy,
        quotas: QuotaGuard,
        clock: Clock,
        *,
        claim_s: int,
        long_claim_s: int,
    ) -> None:
        self.policy = policy
        self.quotas = quotas
        self.clock = clock
        # How long a claimed key stays "in progress" before a retry may take it over; a
        # synthèse in parts may legitimately run for hours.
        self.claim = timedelta(seconds=claim_s)
        self.long_claim = timedelta(seconds=long_claim_s)

    # -- before ----------------------------------------------------------------------------

    async def reserve_committed(
        self, first: AsyncSession | FirstConnection, call: ProviderCall
    ) -> None:
        """Phase 1: the reservation and the key's claim, committed (or rolled back), in the
        request's session, or alone on its first connection (then no key to claim). Also
        when nothing was reserved: nothing may stay open while the provider works."""
        try:
            if isinstance(first, FirstConnection):
                assert first.driver is not None
                await self.reserve_on(first.driver, call)  # a transaction of its own
                await first.release()
            else:
                await self.reserve(first, call)
                await first.commit()
        except BaseException as error:
            if isinstance(first, FirstConnection):
                await first.release(error)
            else:
                await first.rollback()
            raise

    async def reserve(self, session: AsyncSession, call: ProviderCall) -> None:
        """The reservation (with the tenant context), then the claim: a refusal holds
        nothing, and a replay — which raises, so the transaction rolls back — reserves
        nothing."""
        reservation = await self.quotas.reserve_in_context(
            session, call.principal, **self._amounts(call)
        )
        _hold(call, reservation)
        if call.facts.idempotency_key is not None and call.facts.request_hash is not None:
            await self._claim(session, call, call.facts.idempotency_key, call.facts.request_hash)

    async def reserve_on(self, driver: psycopg.AsyncConnection[Any], call: ProviderCall) -> None:
        """The reservation of a request without an Idempotency-Key, alone on its first
        connection (plume.web.transaction.FirstConnection): a transaction of its own, so the
        ledger's rows are locked for the statement and its commit only. A refusal raises,
        nothing held."""
        _hold(call, await self.quotas.reserve_on(driver, call.principal, **self._amounts(call)))

    def _amounts(self, call: ProviderCall) -> dict[str, Any]:
        estimate = call.estimate
        outputs = estimate.output_tokens * estimate.calls
        return {
            "tokens": estimate.tokens,
            "cost": self.policy.worst_cost(call.route, estimate.prompt_tokens, outputs),
            "long": estimate.calls > 1,
        }

    async def _claim(
        self, session: AsyncSession, call: ProviderCall, key: str, request_hash: str
    ) -> None:
        now = self.clock.now()
        organization_id = call.principal.organization_id
        keys = IdempotencyRepository(session)
        claimed = await keys.claim(
            organization_id,
            key,
            request_hash,
            now=now,
            locked_until=now + (self.long_claim if call.estimate.calls > 1 else self.claim),
            expires_at=now + KEEP_FOR,
        )
        if claimed:
            return
        existing = await keys.get(organization_id, key)
        if existing is None:  # expired and swept between the two statements: rare
            raise IdempotencyInProgress()
        if existing.request_hash != request_hash:
            raise IdempotencyMismatch()
        if existing.status_code is None or existing.body is None:
            raise IdempotencyInProgress()
        raise IdempotentReplay(
            StoredResponse(
                status_code=existing.status_code,
                content_type=existing.content_type or "application/json",
                body=existing.body,
                headers=dict(existing.headers or {}),
            )
        )

    # -- after -----------------------------------------------------------------------------

    async def write(
        self,
        session: AsyncSession,
        call: ProviderCall,
        outcome: CallOutcome,
        answer: StoredResponse | None,
    ) -> None:
        await self._keep_or_free_key(session, call, outcome, answer)
        audit = self.audit_entry(call, outcome)
        if outcome.outcome == "queued":
            if call.reservation_id is not None:
                await self.quotas.keep_for_job(session, call.reservation_id)
            await append(session, audit)
            return
        await SettlementRepository(session).write(
            self.usage_row(call, outcome), self._move(call, outcome), audit
        )

    @staticmethod
    def is_one_statement(call: ProviderCall, outcome: CallOutcome) -> bool:
        """Whether the settlement is its statement alone: no Idempotency-Key to answer or
        free, not a job's acceptance (what it stores beside it is the caller's)."""
        return call.facts.idempotency_key is None and outcome.outcome != "queued"

    async def written_alone(
        self, factory: async_sessionmaker[AsyncSession], call: ProviderCall, outcome: CallOutcome
    ) -> bool:
        """`write`, when the settlement `is_one_statement` and nothing else is to be stored
        with it, in a transaction of its own on a pooled connection, pipelined
        (plume.calls.repository.settle_in_one_round_trip); whether it was. Sessions bound
        to one connection (the tests') write it through `write`."""
        engine = pooled_engine(factory)
        if engine is None or not self.is_one_statement(call, outcome):
            return False
        async with pooled_driver_connection(engine) as driver:
            await settle_in_one_round_trip(
                driver,
                call.principal.scope,
                self.usage_row(call, outcome),
                self._move(call, outcome),
                self.audit_entry(call, outcome),
            )
        return True

    def _move(self, call: ProviderCall, outcome: CallOutcome) -> LedgerMove | None:
        if call.reservation_id is None:
            return None
        return self.quotas.move(
            call.reservation_id,
            call.principal.organization_id,
            charged=outcome.charged,
            tokens=outcome.totals.prompt_tokens + outcome.totals.completion_tokens,
            cost=outcome.totals.cost_eur,
        )

    async def _keep_or_free_key(
        self,
        session: AsyncSession,
        call: ProviderCall,
        outcome: CallOutcome,
        answer: StoredResponse | None,
    ) -> None:
        """A request answered keeps its answer for its key's retries; one that failed or
        whose client went away frees its key: retrying it runs it again."""
        key, request_hash = call.facts.idempotency_key, call.facts.request_hash
        if key is None or request_hash is None:
            return
        keys = IdempotencyRepository(session)
        organization_id = call.principal.organization_id
        if outcome.outcome in ("success", "queued") and answer is not None:
            await keys.answer(
                organization_id,
                key,
                request_hash,
                status_code=answer.status_code,
                content_type=answer.content_type,
                body=answer.body,
                headers=answer.headers,
            )
        else:
            await keys.forget(organization_id, key, request_hash)

    @staticmethod
    def usage_row(call: ProviderCall, outcome: CallOutcome) -> UsageRow:
        completion = outcome.completion
        consumed = outcome.totals
        return UsageRow(
            # The call's own: a call settles once, even when its commit went unacknowledged.
            id=call.settlement_id,
            organization_id=call.principal.organization_id,
            api_key_id=call.principal.key_id,
            request_id=call.facts.request_id,
            kind=call.kind,
            model_group=call.route.group.name,
            provider=completion.provider if completion else None,
            model=completion.model if completion else None,
            outcome=outcome.outcome,
            error_code=outcome.error_code,
            prompt_tokens=consumed.prompt_tokens,
            completion_tokens=consumed.completion_tokens,
            cost_eur=consumed.cost_eur,
            latency_ms=round((time.perf_counter() - call.started) * 1000),
            ttft_ms=(
                round(completion.ttft_s * 1000)
                if completion is not None and completion.ttft_s is not None
                else None
            ),
            fallbacks=completion.fallbacks if completion else 0,
            energy_kwh=consumed.energy_kwh,
            gwp_kgco2eq=consumed.gwp_kgco2eq,
            charged=outcome.charged,
        )

    @staticmethod
    def audit_entry(call: ProviderCall, outcome: CallOutcome) -> NewEntry:
        """`draft.create` or `chat.completion`: what was asked and answered, by digest."""
        completion = outcome.completion
        consumed = outcome.totals
        facts = call.facts
        details: dict[str, Any] = {
            "kind": call.kind,
            "model_group": call.route.group.name,
            "provider": completion.provider if completion else None,
            "model": completion.model if completion else None,
            "prompt_tokens": consumed.prompt_tokens,
            "completion_tokens": consumed.completion_tokens,
            "cost_eur": str(consumed.cost_eur),
            "fallbacks": completion.fallbacks if completion else 0,
            "input": facts.input_digest,
            "output": outcome.output_digest,
            # The client's key is free text: its digest identifies it without keeping it.
            "idempotency_key": (
                digest(facts.idempotency_key)["sha256"] if facts.idempotency_key else None
            ),
            "error_code": outcome.error_code,
        }
        principal = call.principal
        return entry(
            organization_id=principal.organization_id,
            action="chat.completion" if call.kind == CHAT_KIND else "draft.create",
            actor=Actor(
                key_id=principal.key_id,
                # A job acts for the key that queued it, as the system.
                role=principal.role.value if facts.request_id else "system",
                request_id=facts.request_id,
                client_address=facts.client_address,
                client_id=principal.client_id,
            ),
            outcome="accepted" if outcome.outcome == "queued" else outcome.outcome,
            target=("draft", str(call.draft_id)) if call.draft_id else None,
            details=details,
        )


def _hold(call: ProviderCall, reservation: Reservation | None) -> None:
    if reservation is not None:
        call.reservation_id = reservation.id
        call.rate_limit = reservation.status
