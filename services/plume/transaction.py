"""The request owns its transaction: this dependency is the one place that commits."""

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
