"""The request owns its transaction: this dependency is the one place that commits (the
first transaction of a provider-backed request is committed before the provider call, by
plume.provider_calls)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession


async def get_db_session(request: Request) -> AsyncIterator[AsyncSession]:
    """Yield the request's session; commit when the endpoint returns, roll back if it raises.

    Declared with scope="function" so that the commit happens before the response is sent:
    a client never sees a success for a write that did not commit.
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


# The first of a provider-backed request's two short transactions: it authenticates the
# caller and, once the request is planned, takes its quota reservation;
# plume.provider_calls.ProviderCalls.before commits it before the provider is called. If
# the request stops before that (bad input, policy, quota), it rolls back: nothing is held,
# and the key's `last_used_at` waits for its next request. A route that calls no provider
# (the model list) commits it when it returns. Scoped to the endpoint function, so nothing
# of it outlives the handler (a stream included).
CallSession = DBSession
