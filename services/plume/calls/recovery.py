"""A settlement the database went away under: committed or not, it is settled once.

A failover (the primary stops dead, a replica is promoted) can cut a settlement before its
commit, or lose the commit's acknowledgement after the replica has it. The provider was
paid and the client waits for its answer. A call's usage record carries the call's own id
(`ProviderCall.settlement_id`): whether the settlement committed can be asked, and no second
settlement of the call can commit beside it (the primary key refuses it). So the settlement
is asked about, and written again if it is not there, on whichever database answers next
(the new primary), a few times over a few seconds. The client gets its successful answer
when the settlement is recorded; else the error (503: the request may have been recorded,
retry with the same Idempotency-Key — the retry replays the recorded answer, or runs again
when nothing was recorded).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Generic, TypeVar

import anyio
import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from plume.calls.repository import SettlementRepository
from plume.db import TenantScope, database_unreachable, enter_tenant_context

if TYPE_CHECKING:
    from plume.calls.unit import ProviderCall, ProviderCalls

T = TypeVar("T")
logger = structlog.get_logger("plume.calls")

# The waits before each new attempt: a replica is promoted within seconds.
AGAIN_AFTER_S = (0.5, 1.0, 2.0, 4.0)


class Kept(Generic[T]):
    """A settlement's `store`, whose result outlives a transaction whose commit raised."""

    def __init__(self, store: Callable[[AsyncSession], Awaitable[T]] | None) -> None:
        self._store = store
        self.result: T | None = None

    @property
    def store(self) -> Callable[[AsyncSession], Awaitable[T]] | None:
        return self._run if self._store is not None else None

    async def _run(self, session: AsyncSession) -> T:
        assert self._store is not None
        self.result = await self._store(session)
        return self.result


async def recorded(
    session_factory: async_sessionmaker[AsyncSession], scope: TenantScope, settlement_id: uuid.UUID
) -> bool:
    """Whether the call's settlement committed (its usage record is there)."""
    async with session_factory() as session, session.begin():
        await enter_tenant_context(session, scope)
        return await SettlementRepository(session).recorded(settlement_id)


async def settle_again(
    error: Exception,
    calls: ProviderCalls,
    call: ProviderCall,
    write: Callable[[], Awaitable[T | None]],
    kept: Kept[T],
    settled: Callable[[], None],
) -> T | None:
    """After `error` (the database went away) in a settlement: the result once the settlement
    is found committed (then `settled` is told), or once `write` commits it; `error`, or the last
    like it, when the database does not come back in time. Never interrupted: the provider
    was paid."""
    with anyio.CancelScope(shield=True):
        for wait in AGAIN_AFTER_S:
            await asyncio.sleep(wait)
            try:
                if await recorded(calls.session_factory, call.principal.scope, call.settlement_id):
                    settled()
                    return kept.result
                return await write()
            except Exception as again:
                if not database_unreachable(again):
                    # A fault of the settlement's own, not the database's: the client is told
                    # what it is told when the database stays away (503: retry with the same
                    # Idempotency-Key), never a 500; the operator reads the fault in the log.
                    logger.exception("settlement_rewrite_failed")
                    raise error from again
                error = again
    raise error


def settle_later(
    error: Exception,
    calls: ProviderCalls,
    call: ProviderCall,
    write: Callable[[], Awaitable[object]],
    settled: Callable[[], None],
) -> None:
    """A call that ended while the database was away (its request answered 503): settled
    in the background on the next database, as `settle_again` does — its reservation
    released (or what its provider produced charged) now rather than by the sweep, 15
    minutes later. The application's stop waits for it (`ProviderCalls.drain`)."""

    async def again() -> None:
        try:
            await settle_again(error, calls, call, write, Kept(None), settled)
        except Exception:
            logger.warning("provider_call_left_to_the_sweep", kind=call.kind)

    task = asyncio.ensure_future(again())
    calls.track(task)
    task.add_done_callback(calls.untrack)
