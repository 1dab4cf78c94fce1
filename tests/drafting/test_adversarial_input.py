"""Adversarial and large texts through the drafts API: the review's reproductions answer at
once (M-5), a huge source is measured without stalling (M-7), and while a long answer is
being finished, the event loop goes on serving everyone else."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Awaitable, Callable

import docx
from httpx import AsyncClient, Response

from plume.app import create_app
from plume.db import create_engine, create_session_factory
from plume.routing.config import parse_routing
from plume.routing.router import ProviderRouter
from tests.drafting.helpers import EXAMPLES, ActProvider, created, fake_routing, post_draft
from tests.support.clients import client_for
from tests.support.factories import Factory, Key
from tests.support.settings import TEST_SECRET, make_settings

# The review's provision: a heading line of spaces and "#", 4.8 KB (11 s to draft before).
PROVISION = "Texte\n# a" + " " * 1600 + "#" * 1600 + " " * 1600 + "x"
# Generous: what took seconds (or hours) before takes milliseconds now.
AT_ONCE_S = 2.0


async def test_the_review_s_provision_is_drafted_at_once(client: AsyncClient, agent: Key) -> None:
    body = {"kind": "arrete", "subject": "Mesure", "context": "Faits.", "provisions": [PROVISION]}
    started = time.perf_counter()
    draft = await created(client, agent, body)
    assert time.perf_counter() - started < AT_ONCE_S
    article = draft["sections"]["articles"][0]["text"]
    assert article.startswith("Texte")


async def test_the_review_s_long_line_is_drafted_and_exported_at_once(
    fake_client: AsyncClient, agent: Key
) -> None:
    # The model's answer holds a 24,000-character line of "*a " (export: seconds before).
    body = {**EXAMPLES["arrete-travaux-pont"], "model_group": "act-ligne-longue"}
    started = time.perf_counter()
    draft = await created(fake_client, agent, body)
    assert time.perf_counter() - started < AT_ONCE_S
    assert "*a " * 8_000 in draft["text"]
    files = {}
    for format in ("md", "docx", "odt"):
        started = time.perf_counter()
        response = await fake_client.get(
            f"/v1/drafts/{draft['id']}/export", headers=agent.headers, params={"format": format}
        )
        assert time.perf_counter() - started < AT_ONCE_S, format
        assert response.status_code == 200, response.text
        files[format] = response.content
    # The unclosed emphasis is kept as written.
    text = "\n".join(p.text for p in docx.Document(io.BytesIO(files["docx"])).paragraphs)
    assert "*a *a *a" in text


async def test_a_huge_source_without_spaces_is_measured_without_stalling(
    client: AsyncClient, agent: Key
) -> None:
    # 600 KB of ideograms in one run: tokenised whole, tiktoken took hours (quadratic).
    body = {"kind": "synthese", "source_text": "中" * 200_000}
    started = time.perf_counter()
    response = await post_draft(client, agent, body)
    assert response.status_code in (201, 202), response.text[:300]
    assert time.perf_counter() - started < 10 * AT_ONCE_S


async def test_other_requests_are_served_while_a_long_answer_is_finished(
    committed_database_url: str, fake: ActProvider
) -> None:
    """A 2 MB délibération takes seconds to parse and check; meanwhile /healthz and a second
    commune's drafts answer as usual: the work runs in a thread, not on the event loop."""
    engine = create_engine(committed_database_url, pool_size=4)
    try:
        async with create_session_factory(engine)() as session, session.begin():
            factory = Factory(session, TEST_SECRET)
            first = await factory.key(await factory.commune())
            second = await factory.key(await factory.commune())
        router = ProviderRouter(parse_routing(fake_routing(fake), "test.yaml"), environ={})
        app = create_app(
            make_settings(committed_database_url), engine=engine, provider_router=router
        )
        long_body = {
            **EXAMPLES["deliberation-subvention-association-sportive"],
            "model_group": "delib-tres-longue",
        }
        short_body = {**EXAMPLES["arrete-terrasse-cafe"], "model_group": "act-complet"}
        async with client_for(app, timeout=60) as client:
            await created(client, second, short_body)  # everything warmed up
            started = time.perf_counter()
            long_request = asyncio.create_task(post_draft(client, first, long_body))
            pings, shorts = await asyncio.gather(
                _latencies(long_request, lambda: client.get("/healthz"), pause_s=0.02),
                _latencies(long_request, lambda: post_draft(client, second, short_body)),
            )
            response = await long_request
            long_s = time.perf_counter() - started
    finally:
        await engine.dispose()
    assert response.status_code == 201, response.text[:300]
    assert len(response.json()["sections"]["articles"]) > 900
    assert shorts, "no other draft was served while the long one was finished"
    # On the event loop, the parsing held every request for most of the long one's time.
    assert max(pings) < long_s / 3, (max(pings), long_s)
    assert max(shorts) < long_s / 2, (max(shorts), long_s)


async def _latencies(
    until: asyncio.Task[Response],
    request: Callable[[], Awaitable[Response]],
    pause_s: float = 0.0,
) -> list[float]:
    """How long each of the requests sent one after the other took, until `until` ends,
    pause included: a stalled event loop also shows as a pause that lasts."""
    latencies: list[float] = []
    while not until.done():
        started = time.perf_counter()
        response = await request()
        assert response.status_code in (200, 201), response.text[:300]
        await asyncio.sleep(pause_s)
        latencies.append(time.perf_counter() - started - pause_s)
    return latencies
