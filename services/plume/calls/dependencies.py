"""The provider-call unit of work as a FastAPI dependency.

`Calls` opens a route's provider call in the request's first transaction — the one that
authenticated the caller (`ProviderCaller`) and holds nothing else — with what the
settlement records of the HTTP request: its id, Idempotency-Key and hash, the client's
address and the digest of its body.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from plume.calls.context import Estimate, RequestFacts
from plume.calls.idempotency import request_key
from plume.calls.unit import ProviderCall, ProviderCalls
from plume.credentials.auth import Principal
from plume.hashing import digest
from plume.routing.types import Route
from plume.web.transaction import DBSession, FirstConn, FirstConnection


class CallOpener:
    def __init__(self, request: Request, session: AsyncSession, first: FirstConnection) -> None:
        self.request = request
        self.session = session
        # Held when the caller's API key was looked up on a connection of its own.
        self.first = first

    @asynccontextmanager
    async def open(
        self,
        principal: Principal,
        *,
        kind: str,
        route: Route,
        estimate: Estimate,
        fields: Mapping[str, Any] | None = None,
    ) -> AsyncIterator[ProviderCall]:
        """The call, reserved as its block is entered and settled once when it ends (see
        plume.calls.unit). The Idempotency-Key is checked here, once the request is known
        to be one the caller may make. `fields` are the request's, which a `refuse` policy
        inspects for personal data before anything is reserved."""
        request = self.request
        key, request_hash = await request_key(request)
        facts = RequestFacts(
            request_id=getattr(request.state, "request_id", None),
            idempotency_key=key,
            request_hash=request_hash,
            client_address=request.client.host if request.client else None,
            input_digest=digest(await request.body()),
        )
        calls: ProviderCalls = request.app.state.provider_calls
        first = self.first if self.first.driver is not None else self.session
        async with calls.open(
            first, principal, facts, kind=kind, route=route, estimate=estimate, fields=fields
        ) as call:
            yield call


def call_opener(request: Request, session: DBSession, first: FirstConn) -> CallOpener:
    return CallOpener(request, session, first)


Calls = Annotated[CallOpener, Depends(call_opener)]
