"""Long provider calls: streams stay alive through silences (a comment line every
PLUME_SSE_KEEPALIVE_S, which is not part of what a retry replays), and every provider call
ends by its deadline (PLUME_PROVIDER_DEADLINE_S), however slowly its provider answers —
settled as the unit of work says, and charged what was produced."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from plume.app import create_app
from plume.calls.streaming import KEEP_ALIVE
from plume.config import Settings
from plume.db import create_engine, create_session_factory
from plume.models import Organization, UsageRecord
from tests.calls.pacing import ANSWER, PacedProvider
from tests.drafting.helpers import french_source
from tests.support.chat import chat_body, sse_data
from tests.support.clients import AppFactory, client_for
from tests.support.factories import Factory, Key
from tests.support.french import looks_french
from tests.support.providers import deployment, group, router_for
from tests.support.quotas import counter, open_reservations, set_quotas
from tests.support.settings import TEST_SECRET, make_settings

ARTICLE = {
    "kind": "bulletin_article",
    "subject": "Ouverture de la médiathèque le dimanche",
    "key_points": ["dès janvier", "de 10 h à 13 h"],
}


def paced_app(
    make_app: AppFactory, settings: Settings, paced: PacedProvider, **overrides: Any
) -> FastAPI:
    """Groups `pause` (a silence after the first word), `trickle` (a word every two
    seconds) and `instant`, each a deployment with a generous per-attempt timeout: only
    the call's deadline can end a trickle."""
    router = router_for(
        group("pause", deployment("pause", paced.api_base, timeout_s=30), default=True),
        group("trickle", deployment("trickle", paced.api_base, timeout_s=30)),
    )
    return make_app(settings=settings.model_copy(update=overrides), provider_router=router)


async def commune_with_quotas(client: AsyncClient, factory: Factory) -> tuple[Organization, Key]:
    operator = await factory.operator_key()
    commune = await factory.commune()
    quotas = [
        {"metric": "requests", "period": "day", "limit": 50},
        {"metric": "tokens", "period": "day", "limit": 100_000},
    ]
    assert (await set_quotas(client, operator, commune, quotas)).status_code == 200
    return commune, await factory.key(commune)


async def records(db: AsyncSession, organization: Organization) -> list[UsageRecord]:
    rows = await db.scalars(
        select(UsageRecord)
        .where(UsageRecord.organization_id == organization.id)
        .order_by(UsageRecord.created_at)
        .execution_options(populate_existing=True)
    )
    return list(rows.all())


def events(body: str) -> list[tuple[str, Any]]:
    """(event, data) of a Server-Sent Events body; comment lines are skipped, as clients do."""
    parsed: list[tuple[str, Any]] = []
    for block in body.split("\n\n"):
        lines = [line for line in block.splitlines() if line and not line.startswith(":")]
        if not lines:
            continue
        name = next((line[6:].strip() for line in lines if line.startswith("event:")), "message")
        data = "\n".join(line[5:].strip() for line in lines if line.startswith("data:"))
        parsed.append((name, data if data == "[DONE]" else json.loads(data)))
    return parsed


# --------------------------------------------------------------------------------------
# Keep-alive
# --------------------------------------------------------------------------------------


async def test_a_silent_draft_stream_is_kept_alive_and_replayed_without_keep_alives(
    make_app: AppFactory, settings: Settings, paced: PacedProvider, factory: Factory
) -> None:
    app = paced_app(make_app, settings, paced, sse_keepalive_s=0.1)
    agent = await factory.key(await factory.commune())
    headers = {**agent.headers, "Idempotency-Key": "silence-dominical"}
    async with client_for(app) as client:
        streamed = await client.post(
            "/v1/drafts", json={**ARTICLE, "stream": True}, headers=headers
        )
        replayed = await client.post(
            "/v1/drafts", json={**ARTICLE, "stream": True}, headers=headers
        )
    assert streamed.status_code == 200, streamed.text
    body = streamed.text
    # The provider's 0.6 s silence after its first word: comment lines between the first
    # delta and the next, each a whole block of its own.
    first = body.index("event: delta")
    second = body.index("event: delta", first + 1)
    assert body.count(KEEP_ALIVE.decode(), first, second) >= 3
    assert all(block == ": keep-alive" or not block.startswith(":") for block in body.split("\n\n"))
    names = [name for name, _ in events(body)]
    assert names[-1] == "draft", names
    assert set(names[:-1]) == {"delta"}, names
    assert "".join(data["text"] for name, data in events(body) if name == "delta") == ANSWER
    # The retry gets the events the client received, not the keep-alives.
    assert replayed.headers.get("idempotency-replayed") == "true"
    assert KEEP_ALIVE not in replayed.content
    assert events(replayed.text) == events(body)


async def test_a_silent_chat_stream_is_kept_alive(
    make_app: AppFactory, settings: Settings, paced: PacedProvider, factory: Factory
) -> None:
    app = paced_app(make_app, settings, paced, sse_keepalive_s=0.1)
    agent = await factory.key(await factory.commune())
    async with client_for(app) as client:
        response = await client.post(
            "/v1/chat/completions", json=chat_body("pause", stream=True), headers=agent.headers
        )
    assert response.status_code == 200, response.text
    assert response.text.count(KEEP_ALIVE.decode()) >= 3
    payloads = sse_data("\n\n".join(b for b in response.text.split("\n\n") if b[:1] != ":"))
    assert payloads[-1] == "[DONE]"
    chunks = [json.loads(p) for p in payloads[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == ANSWER


async def test_a_long_synthese_stream_is_kept_alive_between_its_parts(
    make_app: AppFactory, settings: Settings, paced: PacedProvider, factory: Factory
) -> None:
    # Each call takes the provider 0.6 s: silences in the stream.
    router = router_for(
        group(
            "synthese",
            deployment("pause-parts", paced.api_base, timeout_s=30, context_window=2048),
            max_output_tokens=256,
            default=True,
        )
    )
    app = make_app(
        settings=settings.model_copy(update={"sse_keepalive_s": 0.1}), provider_router=router
    )
    agent = await factory.key(await factory.commune())
    body = {"kind": "synthese", "source_text": french_source(9_000), "stream": True}
    async with client_for(app, timeout=60) as client:
        response = await client.post("/v1/drafts", json=body, headers=agent.headers)
    assert response.status_code == 200, response.text[:500]
    names = [name for name, _ in events(response.text)]
    assert names[-1] == "draft", names
    assert names.count("progress") >= 2, names
    # The parts are asked at once; the final synthèse, after the last part, is a silence too.
    last = response.text.rindex("event: progress")
    final = response.text.index("event: draft")
    assert KEEP_ALIVE.decode() in response.text[last:final]


async def test_a_stream_that_never_falls_silent_sends_no_keep_alive(
    make_app: AppFactory, settings: Settings, paced: PacedProvider, factory: Factory
) -> None:
    app = paced_app(make_app, settings, paced, sse_keepalive_s=5)
    agent = await factory.key(await factory.commune())
    async with client_for(app) as client:
        response = await client.post(
            "/v1/drafts", json={**ARTICLE, "stream": True}, headers=agent.headers
        )
    assert response.status_code == 200
    assert KEEP_ALIVE not in response.content
    assert [name for name, _ in events(response.text)][-1] == "draft"


# --------------------------------------------------------------------------------------
# The deadline
# --------------------------------------------------------------------------------------


async def test_a_provider_too_slow_for_the_deadline_is_502_and_charges_nothing(
    make_app: AppFactory,
    settings: Settings,
    paced: PacedProvider,
    factory: Factory,
    db: AsyncSession,
) -> None:
    # The provider answers after 0.6 s, well within its per-attempt timeout (30 s): only
    # the call's deadline stops it.
    app = paced_app(make_app, settings, paced, provider_deadline_s=0.25)
    async with client_for(app) as client:
        commune, agent = await commune_with_quotas(client, factory)
        started = time.perf_counter()
        response = await client.post(
            "/v1/chat/completions", json=chat_body("pause"), headers=agent.headers
        )
        elapsed = time.perf_counter() - started
    error = response.json()["error"]
    assert response.status_code == 502, response.text
    assert error["code"] == "provider_unavailable"
    assert "délai" in error["message"]
    assert "Rien ne vous a été facturé" in error["message"]
    assert looks_french(error["message"])
    assert elapsed < 0.55, elapsed
    assert [(r.outcome, r.error_code, r.charged) for r in await records(db, commune)] == [
        ("failure", "provider_unavailable", False)
    ]
    used = await counter(db, commune, "requests", "day")
    assert used is not None
    assert (used.used, used.reserved) == (0, 0)
    assert await open_reservations(db, commune) == 0


@pytest.mark.parametrize("route", ["/v1/chat/completions", "/v1/drafts"])
async def test_a_trickling_stream_ends_at_the_deadline_charged_what_it_produced(
    route: str,
    make_app: AppFactory,
    settings: Settings,
    paced: PacedProvider,
    factory: Factory,
    db: AsyncSession,
) -> None:
    # A word every two seconds: each read is within the per-read timeout, for ever. The
    # deadline leaves a loaded machine a second to get the first word through.
    app = paced_app(make_app, settings, paced, provider_deadline_s=1.0)
    closed = paced.closed
    body = (
        chat_body("trickle", stream=True)
        if route.endswith("completions")
        else {**ARTICLE, "model_group": "trickle", "stream": True}
    )
    async with client_for(app) as client:
        commune, agent = await commune_with_quotas(client, factory)
        started = time.perf_counter()
        response = await client.post(route, json=body, headers=agent.headers)
        elapsed = time.perf_counter() - started
    assert response.status_code == 200  # the stream had started
    assert elapsed < 5, elapsed  # and not for ever
    if route.endswith("completions"):
        last = json.loads(sse_data(response.text)[-1])
        message, code = last["error"]["message"], last["error"]["code"]
    else:
        name, problem = events(response.text)[-1]
        assert name == "error"
        message, code = problem["detail"], problem["code"]
    assert code == "provider_unavailable"
    assert "délai" in message
    assert "déjà produit vous est facturé" in message
    assert "mot0" in response.text  # the first word reached the client
    (record,) = await records(db, commune)
    assert (record.outcome, record.error_code, record.charged) == (
        "failure",
        "provider_unavailable",
        True,
    )
    assert record.completion_tokens > 0
    tokens = await counter(db, commune, "tokens", "day")
    assert tokens is not None
    assert tokens.used == record.prompt_tokens + record.completion_tokens
    assert tokens.reserved == 0
    assert paced.closed == closed + 1  # the provider's stream was closed, not left running


# --------------------------------------------------------------------------------------
# Nothing held while the provider works
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("route", "body"),
    [
        ("/v1/chat/completions", chat_body("pause")),
        ("/v1/chat/completions", chat_body("pause", stream=True)),
        ("/v1/drafts", {**ARTICLE, "stream": True}),
    ],
    ids=["chat", "chat-stream", "draft-stream"],
)
async def test_no_connection_is_held_while_the_provider_is_silent(
    route: str, body: dict[str, Any], committed_database_url: str, paced: PacedProvider
) -> None:
    engine = create_engine(committed_database_url, pool_size=2)
    try:
        async with create_session_factory(engine)() as session, session.begin():
            factory = Factory(session, TEST_SECRET)
            agent = await factory.key(await factory.commune())
        router = router_for(
            group("pause", deployment("pause", paced.api_base, timeout_s=30), default=True)
        )
        app = create_app(
            make_settings(committed_database_url), engine=engine, provider_router=router
        )
        async with client_for(app) as client:
            asked = paced.calls["pause"]
            request = asyncio.create_task(client.post(route, json=body, headers=agent.headers))
            for _ in range(500):
                if paced.calls["pause"] > asked:
                    break
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.2)  # the provider is now silent, for 0.6 s
            assert engine.pool.checkedout() == 0
            response = await request
        assert response.status_code == 200, response.text
        assert ANSWER.split()[-1] in response.text
    finally:
        await engine.dispose()
