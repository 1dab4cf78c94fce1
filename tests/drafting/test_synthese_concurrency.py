"""A long synthèse's parts are summarised several at once, within bounds: per synthèse, per
organisation, per deployment. A failing part stops the parts not yet started, and what the
parts already asked produced is counted and charged, to the token."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import anyio
import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from plume.app import create_app
from plume.db import create_engine, create_session_factory
from plume.models import Draft, DraftStatus, UsageRecord
from plume.routing.config import parse_routing
from plume.routing.router import ProviderRouter
from tests.drafting.helpers import (
    SMALL_OUTPUT,
    SMALL_WINDOW,
    french_source,
    post_draft,
    read,
    sse_events,
)
from tests.support.clients import client_for
from tests.support.factories import Factory, Key
from tests.support.providers import deployment, group, routing_yaml
from tests.support.servers import free_port, serve_in_thread
from tests.support.settings import TEST_SECRET, make_settings

# Slow lane: each synthèse waits for its provider, by design. The provider takes long enough
# that it, not the pseudonymisation of the parts (CPU work), is what bounds the parts at once.
pytestmark = pytest.mark.slow

SUMMARY = "Résumé de la partie : le conseil a délibéré."
COMPLETION_TOKENS = 9
# About ten parts within the small context window, then one final call.
SOURCE = french_source(30_000, seed=5)


class CountingProvider:
    """An OpenAI-compatible provider that answers after `delay_s` and keeps the most
    requests it ever had under way at once; the `fail_at`-th request fails at once (500)."""

    def __init__(self, delay_s: float = 0.5) -> None:
        self.delay_s = delay_s
        self.fail_at: int | None = None
        # Requests from the `hold_from`-th on wait for the gate (a process stalls, say).
        self.hold_from: int | None = None
        self.gate = threading.Event()
        self.requests = 0
        self.successes = 0
        self.running = 0
        self.most = 0
        self.port = free_port()
        self.app = Starlette(routes=[Route("/v1/chat/completions", self.chat, methods=["POST"])])

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def reset(self, fail_at: int | None = None, hold_from: int | None = None) -> None:
        self.fail_at, self.hold_from = fail_at, hold_from
        self.requests, self.successes, self.most = 0, 0, 0
        self.gate.clear()

    async def chat(self, request: Request) -> Response:
        body = await request.json()
        self.requests += 1
        if self.requests == self.fail_at:
            return JSONResponse({"error": {"message": "panne"}}, status_code=500)
        if self.hold_from is not None and self.requests >= self.hold_from:
            await anyio.to_thread.run_sync(self.gate.wait)
        self.running += 1
        self.most = max(self.most, self.running)
        try:
            await asyncio.sleep(self.delay_s)
        finally:
            self.running -= 1
        self.successes += 1
        usage = {"prompt_tokens": 100, "completion_tokens": COMPLETION_TOKENS}
        usage["total_tokens"] = usage["prompt_tokens"] + COMPLETION_TOKENS
        return JSONResponse(
            {
                "id": "chatcmpl-parts",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": SUMMARY},
                        "finish_reason": "stop",
                    }
                ],
                "usage": usage,
            }
        )


@pytest.fixture(scope="module")
def provider() -> Iterator[CountingProvider]:
    counting = CountingProvider()
    with serve_in_thread(counting.app, counting.port):
        try:
            yield counting
        finally:
            counting.gate.set()


def router_to(provider: CountingProvider, per_deployment: int | None = None) -> ProviderRouter:
    extra: dict[str, Any] = {"context_window": SMALL_WINDOW, "timeout_s": 10}
    if per_deployment is not None:
        extra["max_parallel_requests"] = per_deployment
    routing = routing_yaml(
        group(
            "parts",
            deployment("ok-parts", provider.api_base, provider="fake", **extra),
            default=True,
            max_output_tokens=SMALL_OUTPUT,
        )
    )
    return ProviderRouter(parse_routing(routing, "test.yaml"), environ={})


@dataclass
class Stack:
    """An application on a database with real commits (its requests run at once, each on
    its own connection), a client, and two communes' keys."""

    app: FastAPI
    client: AsyncClient
    engine: AsyncEngine
    agent: Key
    other: Key


@pytest.fixture
async def stack(
    committed_database_url: str, provider: CountingProvider
) -> AsyncIterator[Callable[..., Awaitable[Stack]]]:
    """`await stack(per_synthese=…, per_organisation=…, per_deployment=…)`."""
    engine = create_engine(committed_database_url, pool_size=4)
    async with create_session_factory(engine)() as session, session.begin():
        factory = Factory(session, TEST_SECRET)
        agent = await factory.key(await factory.commune())
        other = await factory.key(await factory.commune())
    async with AsyncExitStack() as clients:

        async def open_with(
            per_synthese: int, per_organisation: int = 64, per_deployment: int | None = None
        ) -> Stack:
            limits = {
                "synthese_concurrency": per_synthese,
                "synthese_organization_concurrency": per_organisation,
            }
            settings = make_settings(committed_database_url).model_copy(update=limits)
            app = create_app(
                settings, engine=engine, provider_router=router_to(provider, per_deployment)
            )
            client = await clients.enter_async_context(client_for(app, timeout=60))
            return Stack(app, client, engine, agent, other)

        yield open_with
    await engine.dispose()


async def streamed(client: AsyncClient, key: Key) -> list[tuple[str, Any]]:
    body = {"kind": "synthese", "source_text": SOURCE, "stream": True}
    response = await post_draft(client, key, body)
    assert response.status_code == 200, response.text[:500]
    return sse_events(response.text)


async def test_the_parts_of_one_synthese_run_at_once_up_to_its_bound(
    stack: Callable[..., Awaitable[Stack]], provider: CountingProvider
) -> None:
    live = await stack(per_synthese=3)
    provider.reset()
    events = await streamed(live.client, live.agent)
    assert events[-1][0] == "draft", events[-1]
    parts = provider.requests - 1  # and the final synthèse
    assert parts >= 8, parts
    assert provider.most == 3
    progress = [data for name, data in events if name == "progress"]
    dones = [p["done"] for p in progress]
    # Reported as each part ends: one by one, never backwards, every part.
    assert dones == list(range(1, parts + 1))
    assert events[-1][1]["text"].strip()


async def test_an_organisations_syntheses_share_its_bound_and_others_have_their_own(
    stack: Callable[..., Awaitable[Stack]], provider: CountingProvider
) -> None:
    live = await stack(per_synthese=3, per_organisation=4)
    client, agent, other = live.client, live.agent, live.other
    provider.reset()
    together = await asyncio.gather(streamed(client, agent), streamed(client, agent))
    assert all(events[-1][0] == "draft" for events in together)
    assert provider.most == 4  # two syntheses of one commune: four parts at most, not six

    provider.reset()
    apart = await asyncio.gather(streamed(client, agent), streamed(client, other))
    assert all(events[-1][0] == "draft" for events in apart)
    assert provider.most == 6  # two communes: three each


async def test_a_deployments_own_bound_holds_across_syntheses(
    stack: Callable[..., Awaitable[Stack]], provider: CountingProvider
) -> None:
    live = await stack(per_synthese=8, per_deployment=2)
    provider.reset()
    results = await asyncio.gather(
        streamed(live.client, live.agent), streamed(live.client, live.other)
    )
    assert all(events[-1][0] == "draft" for events in results)
    assert provider.most == 2


async def test_a_failing_part_stops_the_rest_and_what_was_produced_is_charged(
    stack: Callable[..., Awaitable[Stack]], provider: CountingProvider
) -> None:
    live = await stack(per_synthese=2)
    agent = live.agent
    provider.reset(fail_at=4)
    body = {"kind": "synthese", "source_text": SOURCE}
    response = await post_draft(live.client, agent, body)
    assert response.status_code == 202, response.text[:500]
    job_id = response.json()["id"]
    assert await live.app.state.synthese_worker.run_once() is True

    failed = await read(live.client, agent, job_id)
    assert failed["status"] == "failed"
    assert "facturé" in failed["failure_reason"]
    # Two parts at a time: the third and fourth were asked together; the fourth failed, the
    # third ran to its end, and no part started after the failure.
    assert provider.requests == 4, provider.requests
    assert provider.successes == 3
    async with create_session_factory(live.engine)() as session:
        record = (
            await session.execute(
                select(UsageRecord).where(
                    UsageRecord.organization_id == agent.organization.id,
                    UsageRecord.kind == "synthese",
                )
            )
        ).scalar_one()
    assert record.outcome == "failure"
    assert record.charged
    # Exactly what the three answers produced, to the token.
    assert record.completion_tokens == 3 * COMPLETION_TOKENS
    assert record.prompt_tokens == 3 * 100


async def test_a_resumed_job_does_not_pay_again_for_the_parts_already_summarised(
    stack: Callable[..., Awaitable[Stack]], provider: CountingProvider
) -> None:
    live = await stack(per_synthese=2)
    agent = live.agent
    provider.reset(hold_from=5)
    response = await post_draft(live.client, agent, {"kind": "synthese", "source_text": SOURCE})
    assert response.status_code == 202, response.text[:500]
    job_id = uuid.UUID(response.json()["id"])
    sessions = create_session_factory(live.engine)

    async def job() -> Draft:
        async with sessions() as session:
            draft = await session.get(Draft, job_id)
            assert draft is not None
            return draft

    # Four parts summarised, the fifth and sixth under way when the process stops (SIGTERM).
    worker = live.app.state.synthese_worker
    worker.start()
    for _ in range(2000):
        if provider.requests == 6 and len((await job()).part_summaries or {}) == 4:
            break
        await asyncio.sleep(0.01)
    await worker.stop()
    provider.gate.set()
    stopped = await job()
    assert stopped.status is DraftStatus.PROCESSING
    assert stopped.progress is not None
    parts = stopped.progress["total"]
    assert parts >= 8

    # Another process resumes the job: only the parts not yet summarised, then the synthèse.
    provider.reset()
    assert await worker.run_once() is True
    done = await job()
    assert done.status is DraftStatus.DRAFT, done.failure_reason
    assert done.attempts == 2
    assert provider.requests == parts - 4 + 1
    assert done.part_summaries is None  # the job has ended: its checkpoints are gone
    async with sessions() as session:
        records = (
            await session.scalars(
                select(UsageRecord)
                .where(UsageRecord.organization_id == agent.organization.id)
                .order_by(UsageRecord.created_at)
            )
        ).all()
    # Each attempt is charged what it asked for, to the token: the four parts once.
    assert [(r.outcome, r.error_code) for r in records] == [
        ("failure", "interrupted"),
        ("success", None),
    ]
    assert [r.completion_tokens for r in records] == [
        4 * COMPLETION_TOKENS,
        (parts - 4 + 1) * COMPLETION_TOKENS,
    ]
