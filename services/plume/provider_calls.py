"""The transaction layout of a provider-backed request, and the seam later steps hang on.

A provider call lasts seconds to minutes, so no database connection, row lock or advisory
lock is held across it. A request is:

1. authenticate, check policy, claim the idempotency key and reserve quota in one short
   transaction, committed before the call;
2. call the provider holding nothing;
3. in a second short transaction, run every hook's `after_call` — on success, on failure
   and when the client went away — shielded from cancellation, so that what was reserved is
   always settled or released. A hook may leave a SQL function call (`DeferredCall`) for
   the statement that writes the usage record, which evaluates it in the same round trip;
   whatever no hook took runs on its own before the commit.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal, Protocol, TypeVar

import anyio
import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from plume.credentials.auth import Principal
from plume.db import DriverStatement, enter_tenant_context
from plume.routing.router import Completion, Route

logger = structlog.get_logger("plume.provider_calls")

T = TypeVar("T")
# "deferred": the request was accepted as a job; the job settles it later.
Outcome = Literal["success", "failure", "client_disconnected", "deferred"]


@dataclass(frozen=True, slots=True)
class Estimate:
    """What a request may consume at most, known before the call (quota reservations)."""

    prompt_tokens: int
    # Per provider call: the group's max_output_tokens, or the request's if lower.
    output_tokens: int
    # A long synthèse makes one call per part, then the final one.
    calls: int = 1

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.output_tokens * self.calls


@dataclass(frozen=True, slots=True)
class RateLimitStatus:
    """The tightest quota after this request's reservation, for the RateLimit-* headers."""

    limit: Decimal
    remaining: Decimal
    reset_seconds: int

    def headers(self) -> dict[str, str]:
        return {
            "RateLimit-Limit": plain_number(self.limit),
            "RateLimit-Remaining": plain_number(max(self.remaining, Decimal(0))),
            "RateLimit-Reset": str(self.reset_seconds),
        }


def plain_number(value: Decimal) -> str:
    """12, 0.5: a count or an amount as a person (and a header) writes it."""
    return str(int(value)) if value == value.to_integral_value() else f"{value.normalize():f}"


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """The answer given to a request, kept for the retries of its Idempotency-Key."""

    status_code: int
    content_type: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DeferredCall:
    """A SQL function call left for the settlement statement (e.g. settling the quota
    ledger). `sql` is built from constants; its parameter names belong to the hook that
    made it, so that several calls can share one statement."""

    sql: str
    parameters: dict[str, Any]


async def run_deferred(session: AsyncSession, call: DeferredCall) -> Any:
    return await session.scalar(text(f"SELECT {call.sql}"), call.parameters)


def deferred_ctes(calls: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """Common table expressions evaluating `calls` (SQL built from constants), and their
    names: a statement must list them in a FROM clause (each yields one row), as
    PostgreSQL does not run a SELECT in WITH that nothing reads."""
    names = [f"deferred_{index}" for index in range(len(calls))]
    ctes = [f"{name} AS (SELECT {call} AS result)" for name, call in zip(names, calls, strict=True)]
    return ctes, names


@dataclass(slots=True)
class CallContext:
    principal: Principal
    kind: str
    route: Route
    request_id: str | None
    idempotency_key: str | None = None
    # SHA-256 of the request (method, route, body), with the Idempotency-Key.
    request_hash: str | None = None
    estimate: Estimate | None = None
    started: float = field(default_factory=time.perf_counter)
    # Written by the hooks: the quota reservation held, and the tightest quota.
    reservation_id: uuid.UUID | None = None
    rate_limit: RateLimitStatus | None = None
    client_address: str | None = None
    # SHA-256 and size of the request body and of the answer (the audit trail keeps these,
    # never the texts); the draft the request created.
    input_digest: dict[str, Any] | None = None
    output_digest: dict[str, Any] | None = None
    draft_id: uuid.UUID | None = None
    # The answer, once known, for the idempotency hook to keep; or how to build it from
    # what the settlement transaction stores (the draft).
    response: StoredResponse | None = None
    responder: Callable[[Any], StoredResponse] | None = None
    # Set once the call has been settled (see plume.streaming).
    settled: bool = False
    # Left by the hooks for the statement that writes the usage record (which empties it).
    deferred: list[DeferredCall] = field(default_factory=list)

    def response_headers(self) -> dict[str, str]:
        return self.rate_limit.headers() if self.rate_limit is not None else {}

    def take_deferred(self) -> list[DeferredCall]:
        """The deferred calls, for the statement that will evaluate them."""
        calls, self.deferred = self.deferred, []
        return calls


@dataclass(frozen=True, slots=True)
class Totals:
    """What a request consumed over all its provider calls."""

    prompt_tokens: int
    completion_tokens: int
    cost_eur: Decimal
    # None when one of the calls' models has no known parameters.
    energy_kwh: float | None = None
    gwp_kgco2eq: float | None = None


@dataclass(frozen=True, slots=True)
class CallOutcome:
    outcome: Outcome
    completion: Completion | None = None
    error_code: str | None = None
    # For requests of several calls (long synthèses); else the completion's own figures.
    totals: Totals | None = None

    @property
    def charged(self) -> bool:
        """Whether the request counts against quotas. A provider failure releases
        everything; but when the provider did answer and Plume failed afterwards (storing
        the draft), the provider was paid: that is charged."""
        if self.outcome != "failure":
            return True
        return self.completion is not None and self.error_code == "internal_error"

    @property
    def consumed(self) -> Totals:
        if self.totals is not None:
            return self.totals
        if self.completion is None:
            return Totals(0, 0, Decimal(0), 0.0, 0.0)
        return Totals(
            self.completion.prompt_tokens,
            self.completion.completion_tokens,
            self.completion.cost_eur,
            self.completion.energy_kwh,
            self.completion.gwp_kgco2eq,
        )


class CallHook(Protocol):
    """What runs around a provider call. A hook that inherits this class gets the
    defaults: nothing sent with the tenant context, nothing checked before the call."""

    def opening(self, context: CallContext) -> DriverStatement | None:
        """A row source read with the tenant context, in its statement (the quota
        reservation; one hook at most); its rows come back to `before_call` as `opened`."""
        return None

    async def before_call(
        self, session: AsyncSession, context: CallContext, opened: list[tuple[Any, ...]] | None
    ) -> None:
        return None

    async def after_call(
        self, session: AsyncSession, context: CallContext, outcome: CallOutcome
    ) -> None: ...


class CallObserver(Protocol):
    """Sees every settled call, outside any transaction (metrics)."""

    def observe(self, context: CallContext, outcome: CallOutcome) -> None: ...


class ProviderCalls:
    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        hooks: list[CallHook],
        observers: list[CallObserver] | None = None,
    ) -> None:
        self.session_factory = session_factory
        self.hooks = hooks
        self.observers = observers or []

    async def before(self, context: CallContext, session: AsyncSession | None = None) -> None:
        """Phase 1: the hooks' checks and reservations, committed before the provider is
        called. `session` is the request's first transaction, which authenticated it
        (plume.transaction.CallSession); without it, a transaction of its own."""
        if session is None:
            async with self.session_factory() as own:
                await self._open(own, context)
            return
        await self._open(session, context)

    async def _open(self, session: AsyncSession, context: CallContext) -> None:
        try:
            if self.hooks:
                openings = [hook.opening(context) for hook in self.hooks]
                opening = [statement for statement in openings if statement is not None]
                if len(opening) > 1:
                    raise RuntimeError("at most one hook may send a statement with the context")
                # Holds only: the settlement, durable, is what counts (see
                # enter_tenant_context).
                opened = await enter_tenant_context(
                    session,
                    context.principal.scope,
                    durable=False,
                    then=opening[0] if opening else None,
                )
                for hook, statement in zip(self.hooks, openings, strict=True):
                    await hook.before_call(
                        session, context, opened if statement is not None else None
                    )
            # Also without hooks: nothing may stay open while the provider works.
            await session.commit()
        except BaseException:
            await session.rollback()
            raise

    async def after(
        self,
        context: CallContext,
        outcome: CallOutcome,
        work: Callable[[AsyncSession], Awaitable[T]] | None = None,
    ) -> T | None:
        """Phase 3: settle, whatever happened; never interrupted by a client's departure.

        `work` (e.g. storing the draft) runs in the same transaction as the hooks, so the
        result, its usage and its audit entry are committed together or not at all.
        """
        if context.settled:
            return None  # settled once already (e.g. an abandoned stream finalised late)
        completion = outcome.completion
        logger.info(
            "provider_request",
            kind=context.kind,
            model_group=context.route.group.name,
            outcome=outcome.outcome,
            error_code=outcome.error_code,
            provider=completion.provider if completion else None,
            model=completion.model if completion else None,
            fallbacks=completion.fallbacks if completion else None,
            prompt_tokens=outcome.consumed.prompt_tokens,
            completion_tokens=outcome.consumed.completion_tokens,
            duration_ms=round((time.perf_counter() - context.started) * 1000, 1),
        )
        result: T | None = None
        if self.hooks or work is not None:
            with anyio.CancelScope(shield=True):
                async with self.session_factory() as session, session.begin():
                    await enter_tenant_context(session, context.principal.scope)
                    context.deferred.clear()  # from an attempt that rolled back
                    if work is not None:
                        result = await work(session)
                    for hook in self.hooks:
                        await hook.after_call(session, context, outcome)
                    for call in context.take_deferred():
                        await run_deferred(session, call)
        context.settled = True
        # Only once committed: a settlement that rolls back is settled again, differently,
        # and must not be counted twice.
        for observer in self.observers:
            observer.observe(context, outcome)
        return result
