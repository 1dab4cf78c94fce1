"""The request owns its transaction: this dependency is the one place that commits (the
first transaction of a provider-backed request is committed before the provider call, by
its unit of work, plume.calls)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Annotated, Any

import psycopg
from fastapi import Depends, Request
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from plume.db import commit_on, pooled_driver_connection, pooled_engine

# Claimed in the transaction that reserves quota (plume.calls.idempotency), through the
# session: a request that carries one has its first transaction on the session.
IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"


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


class FirstTransaction:
    """A provider-backed request's first transaction without a session, when it may go
    without one: an API key's lookup begins it (with its `BEGIN`, in one round trip), the
    quota reservation follows with its `COMMIT` (one round trip), and the connection goes
    back to the pool before the provider is called (plume.credentials.auth, plume.calls).
    It may not when the request carries an Idempotency-Key (its claim is the session's) or
    when the application's sessions are bound to one connection (the tests'): `driver` then
    stays None and the request's session does it all, as for an OAuth2 client or a
    signed-in agent."""

    def __init__(self, engine: AsyncEngine | None) -> None:
        self._engine = engine
        self._held = AsyncExitStack()
        # The pooled connection while the transaction is open.
        self.driver: psycopg.AsyncConnection[Any] | None = None

    @property
    def possible(self) -> bool:
        """Whether the transaction may begin on its own connection (it has not yet)."""
        return self._engine is not None and self.driver is None

    @property
    def dialect(self) -> Dialect:
        assert self._engine is not None
        return self._engine.dialect

    async def connection(self) -> psycopg.AsyncConnection[Any]:
        """A pooled connection (pinged), in autocommit mode: the first statement sends the
        transaction's `BEGIN` (plume.db.pipelined)."""
        if self._engine is None or self.driver is not None:
            raise RuntimeError("this request's first transaction is the session's, or open")
        self.driver = await self._held.enter_async_context(pooled_driver_connection(self._engine))
        return self.driver

    async def commit(self) -> None:
        """Commit the transaction, if one is open, and give its connection back."""
        if self.driver is None:
            return
        try:
            await commit_on(self.driver)
        except BaseException as error:
            await self.release(error)
            raise
        await self.release()

    async def release(self, error: BaseException | None = None) -> None:
        """Give the connection back, what it left open rolled back (dropped if `error` says
        the database went away)."""
        self.driver = None
        if error is None:
            await self._held.aclose()
        else:
            await self._held.__aexit__(type(error), error, error.__traceback__)


async def get_first_transaction(request: Request) -> AsyncIterator[FirstTransaction]:
    """The request's first transaction, committed when the endpoint returns if it is still
    open (a request that reserves nothing: the key's use), rolled back if it raises."""
    engine = None
    if IDEMPOTENCY_KEY_HEADER not in request.headers:
        engine = pooled_engine(request.app.state.session_factory)
    first = FirstTransaction(engine)
    try:
        yield first
    except BaseException as error:
        await first.release(error)
        raise
    else:
        await first.commit()


FirstTx = Annotated[FirstTransaction, Depends(get_first_transaction, scope="function")]
