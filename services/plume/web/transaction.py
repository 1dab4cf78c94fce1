"""The request owns its transaction: this dependency is the one place that commits (the
first transaction of a provider-backed request is committed before the provider call, by
its unit of work, plume.calls)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession


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
