"""The transaction layout of a provider-backed request, and the seam later steps hang on.

A provider call lasts seconds to minutes, so no database connection, row lock or advisory
lock is held across it. A request is:

1. authenticate and check policy (and, with quotas, reserve) in one short transaction;
2. call the provider holding nothing;
3. in a second short transaction, run every hook's `after_call` — on success, on failure
   and when the client went away — shielded from cancellation, so that what was reserved is
   always settled or released.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol, TypeVar

import anyio
import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from plume.credentials.auth import Principal
from plume.db import enter_tenant_context
from plume.routing.router import Completion, Route

logger = structlog.get_logger("plume.provider_calls")

T = TypeVar("T")
# "deferred": the request was accepted as a job; the job settles it later.
Outcome = Literal["success", "failure", "client_disconnected", "deferred"]


@dataclass(slots=True)
class CallContext:
    principal: Principal
    kind: str
    route: Route
    request_id: str | None
    idempotency_key: str | None = None
    started: float = field(default_factory=time.perf_counter)


@dataclass(frozen=True, slots=True)
class CallOutcome:
    outcome: Outcome
    completion: Completion | None = None
    error_code: str | None = None


class CallHook(Protocol):
    async def before_call(self, session: AsyncSession, context: CallContext) -> None: ...

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

    async def before(self, context: CallContext) -> None:
        """Phase 1 (after authentication): the hooks' checks and reservations, committed."""
        if not self.hooks:
            return
        async with self.session_factory() as session, session.begin():
            await enter_tenant_context(session, context.principal.scope)
            for hook in self.hooks:
                await hook.before_call(session, context)

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
            prompt_tokens=completion.prompt_tokens if completion else None,
            completion_tokens=completion.completion_tokens if completion else None,
            duration_ms=round((time.perf_counter() - context.started) * 1000, 1),
        )
        for observer in self.observers:
            observer.observe(context, outcome)
        if not self.hooks and work is None:
            return None
        result: T | None = None
        with anyio.CancelScope(shield=True):
            async with self.session_factory() as session, session.begin():
                await enter_tenant_context(session, context.principal.scope)
                if work is not None:
                    result = await work(session)
                for hook in self.hooks:
                    await hook.after_call(session, context, outcome)
        return result
