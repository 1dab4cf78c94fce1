"""The request owns its transaction: this dependency is the one place that commits (the
first transaction of a provider-backed request is committed before the provider call, by
its unit of work, plume.calls)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Annotated, Any, TypeVar

import psycopg
from fastapi import Depends, Request
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from plume.db import database_unreachable, pooled_driver_connection, pooled_engine, unchecked

# Claimed in the transaction that reserves quota (plume.calls.idempotency), through the
# session: a request that carries one has its first transaction on the session.
IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"

T = TypeVar("T")


async def get_db_session(request: Request) -> AsyncIterator[AsyncSession]:
    """Yield the request's session; commit when the endpoint returns, roll back if it raises.

    Declared with scope="function" so that the commit happens before the response is sent:
    a client never sees a success for a write that did not commit, and nothing of the session
    outlives the handler (a stream included). On a provider-backed route, this session is
    the unit of work's first transaction (plume.calls), committed before the provider is
    called; if the request stops before that (bad input, policy, quota), it rolls back and
    nothing is held.
    """
    factory = request.app.state.session_factory
    async with factory() as session:
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise
        else:
            await session.commit()


DBSession = Annotated[AsyncSession, Depends(get_db_session, scope="function")]


class FirstConnection:
    """The pooled connection a provider-backed request by API key holds from its key's
    lookup to its quota reservation, without a session, when it may: in autocommit mode,
    each statement its own transaction — the lookup (with the key's use it records), then
    the reservation in its tenant context (committed if it fits; a refusal is an error that
    rolls it back: quota_reserve_or_refuse) — and back to the pool before the provider is
    called (plume.credentials.auth, plume.calls). It may not when the request carries an
    Idempotency-Key (its claim goes with the reservation, in the session's transaction) or
    when the application's sessions are bound to one connection (the tests'): `driver` then
    stays None and the request's session does it all, as for an OAuth2 client or a
    signed-in agent."""

    def __init__(self, engine: AsyncEngine | None) -> None:
        self._engine = engine
        self._held = AsyncExitStack()
        # The pooled connection while it is held.
        self.driver: psycopg.AsyncConnection[Any] | None = None

    @property
    def possible(self) -> bool:
        """Whether the request may take a connection of its own (it has not yet)."""
        return self._engine is not None and self.driver is None

    @property
    def dialect(self) -> Dialect:
        assert self._engine is not None
        return self._engine.dialect

    async def first(self, statement: Callable[[psycopg.AsyncConnection[Any]], Awaitable[T]]) -> T:
        """`statement`'s answer, run on a pooled connection in autocommit mode
        (plume.db.pooled_driver_connection) that the pool did not check with a round trip of
        its own: the statement is the check. If the database had closed that connection (a
        restart, a failover), it is dropped and the statement sent again on a connection the
        pool checks; `statement` must bear being sent twice (nothing it did was committed, or
        doing it again changes nothing)."""
        with unchecked():
            driver = await self._take()
        try:
            return await statement(driver)
        except Exception as error:
            await self.release(error)
            if not database_unreachable(error):
                raise
        return await statement(await self._take())

    async def _take(self) -> psycopg.AsyncConnection[Any]:
        if self._engine is None or self.driver is not None:
            raise RuntimeError("this request's first transaction is the session's, or held")
        self.driver = await self._held.enter_async_context(pooled_driver_connection(self._engine))
        return self.driver

    async def release(self, error: BaseException | None = None) -> None:
        """Give the connection back (dropped if `error` says the database went away)."""
        self.driver = None
        if error is None:
            await self._held.aclose()
        else:
            await self._held.__aexit__(type(error), error, error.__traceback__)


async def get_first_connection(request: Request) -> AsyncIterator[FirstConnection]:
    """The request's first connection, given back when the endpoint returns if it is still
    held (a request that reserves nothing, or that stopped before it did)."""
    engine = None
    if IDEMPOTENCY_KEY_HEADER not in request.headers:
        engine = pooled_engine(request.app.state.session_factory)
    first = FirstConnection(engine)
    try:
        yield first
    except BaseException as error:
        await first.release(error)
        raise
    else:
        await first.release()


FirstConn = Annotated[FirstConnection, Depends(get_first_connection, scope="function")]
