"""The provider-call unit of work (app.state.provider_calls) driven directly: a reservation
a dead process left is swept once expired, a call is settled once however often it is
closed, and a draft that could not be stored is charged once the provider answered."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from plume.calls.context import Estimate, RequestFacts
from plume.calls.unit import ProviderCall
from plume.credentials.auth import authenticate_token
from plume.models import UsageRecord
from tests.support.clock import FakeClock
from tests.support.factories import Factory, Key
from tests.support.problems import assert_problem
from tests.support.quotas import ARTICLE, counter, open_reservations, set_quotas


@pytest.fixture
def app_overrides(clock: FakeClock) -> dict[str, Any]:
    return {"clock": clock}


async def _reserved_call(app: FastAPI, agent: Key, kind: str, estimate: Estimate) -> ProviderCall:
    """A provider call of `agent`'s, past its reservation (the unit of work's first phase)."""
    async with app.state.session_factory() as session:
        principal = await authenticate_token(session, app.state.settings, agent.secret)
        route = app.state.provider_router.route(None, frozenset(principal.policy.allowed_hosting))
        call: ProviderCall = app.state.provider_calls.open(
            session,
            principal,
            RequestFacts(request_id=f"test-{kind}"),
            kind=kind,
            route=route,
            estimate=estimate,
        )
        await call.__aenter__()
    return call


async def test_the_sweep_releases_a_reservation_its_request_never_settled(
    app: FastAPI, client: AsyncClient, factory: Factory, db: AsyncSession, clock: FakeClock
) -> None:
    """A process killed during the provider call leaves its reservation: the sweep frees it
    once it has expired, and only then."""
    operator = await factory.operator_key()
    epci = await factory.epci()
    commune = await factory.commune(parent=epci)
    await set_quotas(client, operator, epci, [{"metric": "requests", "period": "day", "limit": 1}])
    agent = await factory.key(commune)
    me = (await client.get("/v1/organization", headers=agent.headers)).json()
    assert me["id"] == str(commune.id)

    # Phase 1 of a request, as a process would run it before dying mid-call.
    call = await _reserved_call(app, agent, "chat", Estimate(prompt_tokens=10, output_tokens=100))
    assert call.reservation_id is not None
    held = await counter(db, epci, "requests", "day")
    assert held is not None
    assert held.reserved == 1
    assert_problem(
        await client.post("/v1/drafts", json=ARTICLE, headers=agent.headers), 429, "quota_exceeded"
    )

    sweeper = app.state.quota_sweeper
    assert await sweeper.run_once() == 0  # not expired yet
    clock.advance(seconds=app.state.settings.quota_reservation_ttl_s + 1)
    assert await sweeper.run_once() == 1
    freed = await counter(db, epci, "requests", "day")
    assert freed is not None
    assert (freed.used, freed.reserved) == (Decimal(0), Decimal(0))
    assert await open_reservations(db, commune) == 0
    assert (await client.post("/v1/drafts", json=ARTICLE, headers=agent.headers)).status_code == 201


async def test_a_call_is_settled_once_however_often_it_is_closed(
    app: FastAPI, client: AsyncClient, factory: Factory, db: AsyncSession
) -> None:
    """A late second settlement (a stream finalised after it was already settled, a block
    ending after its call was settled) changes nothing: no second charge, no second usage
    row."""
    operator = await factory.operator_key()
    commune = await factory.commune()
    agent = await factory.key(commune)
    await set_quotas(
        client, operator, commune, [{"metric": "requests", "period": "day", "limit": 9}]
    )
    call = await _reserved_call(app, agent, "chat", Estimate(prompt_tokens=5, output_tokens=50))
    await call.complete([{"role": "user", "content": "Rédige une phrase."}])
    for _ in range(2):
        await call.close(client_left=True)
    await call.close(RuntimeError("late"))
    assert await call.settle() is None
    await call.__aexit__(None, None, None)
    used = await counter(db, commune, "requests", "day")
    assert used is not None
    assert (used.used, used.reserved) == (Decimal(1), Decimal(0))
    records = (
        await db.scalars(select(UsageRecord).where(UsageRecord.organization_id == commune.id))
    ).all()
    assert [(r.outcome, r.charged) for r in records] == [("client_disconnected", True)]


async def test_a_draft_that_could_not_be_stored_is_charged_once_the_provider_answered(
    app: FastAPI, client: AsyncClient, factory: Factory, db: AsyncSession
) -> None:
    """The provider answered (and was paid), then storing the result failed: the settlement
    that failed leaves nothing, the one after it charges the tokens, once."""
    operator = await factory.operator_key()
    commune = await factory.commune()
    agent = await factory.key(commune)
    await set_quotas(
        client, operator, commune, [{"metric": "tokens", "period": "day", "limit": 100_000}]
    )
    call = await _reserved_call(
        app, agent, "bulletin_article", Estimate(prompt_tokens=100, output_tokens=500)
    )
    completion = await call.complete([{"role": "user", "content": "Rédige une phrase."}])

    async def storing_fails(session: AsyncSession) -> None:
        raise RuntimeError("the draft could not be stored")

    with pytest.raises(RuntimeError):
        await call.settle(storing_fails)
    await call.close(RuntimeError("the block ends with the error"))
    tokens = await counter(db, commune, "tokens", "day")
    assert tokens is not None
    assert (tokens.used, tokens.reserved) == (Decimal(completion.total_tokens), Decimal(0))
    records = (
        await db.scalars(select(UsageRecord).where(UsageRecord.organization_id == commune.id))
    ).all()
    assert [(r.outcome, r.charged, r.error_code) for r in records] == [
        ("failure", True, "internal_error")
    ]


async def test_a_stopping_application_waits_for_its_calls_to_settle(
    app: FastAPI, client: AsyncClient, factory: Factory, db: AsyncSession
) -> None:
    """The lifespan drains the calls before it disposes of the engine: a call still running
    when the application stops (a stream the server cancelled) settles as it ends."""
    commune = await factory.commune()
    agent = await factory.key(commune)
    calls = app.state.provider_calls
    call = await _reserved_call(app, agent, "chat", Estimate(prompt_tokens=5, output_tokens=50))
    await call.complete([{"role": "user", "content": "Rédige une phrase."}])
    assert await calls.drain(0.05) == 1  # not settled yet: a stop now would leave it

    async def the_request_ends() -> None:
        await asyncio.sleep(0.2)
        await call.close(client_left=True)

    ending = asyncio.create_task(the_request_ends())
    assert await calls.drain(5) == 0
    await ending
    records = (
        await db.scalars(select(UsageRecord).where(UsageRecord.organization_id == commune.id))
    ).all()
    assert [(r.outcome, r.charged) for r in records] == [("client_disconnected", True)]


async def test_a_request_cancelled_while_it_settles_is_settled_all_the_same_once(
    app: FastAPI, client: AsyncClient, factory: Factory, db: AsyncSession
) -> None:
    """uvicorn cancels what still runs at the end of its drain, with asyncio's own
    cancellation, which goes through anyio's shields: the settlement goes on in a task of
    its own, which the application waits for, and nothing settles it a second time."""
    operator = await factory.operator_key()
    commune = await factory.commune()
    agent = await factory.key(commune)
    await set_quotas(
        client, operator, commune, [{"metric": "requests", "period": "day", "limit": 9}]
    )
    call = await _reserved_call(app, agent, "chat", Estimate(prompt_tokens=5, output_tokens=50))
    await call.complete([{"role": "user", "content": "Rédige une phrase."}])
    request = asyncio.create_task(call.settle())
    await asyncio.sleep(0)  # the request is now waiting for its settlement
    assert not call.settled
    request.cancel()
    with pytest.raises(asyncio.CancelledError):
        await request
    await call.close(asyncio.CancelledError())  # the request's block ends, cancelled
    assert await app.state.provider_calls.drain(5) == 0
    assert call.settled
    records = (
        await db.scalars(select(UsageRecord).where(UsageRecord.organization_id == commune.id))
    ).all()
    assert [(r.outcome, r.charged) for r in records] == [("success", True)]
    used = await counter(db, commune, "requests", "day")
    assert used is not None
    assert (used.used, used.reserved) == (Decimal(1), Decimal(0))
