"""The official `openai` client against a running Plume: a real uvicorn server in a background
thread, with its own engine on the committed database, routed to the local fake provider."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import openai
import pytest

from plume.app import create_app
from plume.db import create_engine, create_session_factory
from tests.calls.pacing import ANSWER as PACED_ANSWER
from tests.calls.pacing import running_paced_provider
from tests.chat.helpers import ALL_KINDS_BUT_CHAT, WORDS, chat_router
from tests.support.chat import chat_body
from tests.support.factories import Factory
from tests.support.french import looks_french
from tests.support.providers import (
    ANSWER,
    DRIP_WORDS,
    RecordingProvider,
    deployment,
    group,
    router_for,
)
from tests.support.servers import free_port, serve_in_thread
from tests.support.settings import TEST_SECRET, make_settings

# Slow lane: Plume served by uvicorn from a background thread.
pytestmark = pytest.mark.slow


@dataclass
class LiveTenants:
    agent: str
    admin: str
    muted: str


@pytest.fixture(scope="module")
async def live_tenants(committed_database_url: str) -> LiveTenants:
    engine = create_engine(committed_database_url, pool_size=1)
    try:
        async with create_session_factory(engine)() as session, session.begin():
            factory = Factory(session, TEST_SECRET)
            commune = await factory.commune("Commune branchée sur LibreChat")
            agent = await factory.key(commune, "agent")
            admin = await factory.key(commune, "tenant_admin")
            muted_commune = await factory.commune(
                "Commune sans dialogue", allowed_kinds=ALL_KINDS_BUT_CHAT
            )
            muted = await factory.key(muted_commune, "agent")
    finally:
        await engine.dispose()
    return LiveTenants(agent=agent.secret, admin=admin.secret, muted=muted.secret)


@pytest.fixture(scope="module")
def live_url(
    fake: RecordingProvider, committed_database_url: str, live_tenants: LiveTenants
) -> Iterator[str]:
    """A running Plume: uvicorn, its own engine (lifespan), real commits."""
    app = create_app(make_settings(committed_database_url), provider_router=chat_router(fake))
    port = free_port()
    with serve_in_thread(app, port, lifespan="on"):
        yield f"http://127.0.0.1:{port}"


def openai_client(live_url: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{live_url}/v1", api_key=key, max_retries=0, timeout=20)


def test_the_openai_client_completes(live_url: str, live_tenants: LiveTenants) -> None:
    client = openai_client(live_url, live_tenants.agent)
    completion = client.chat.completions.create(
        model="assistant",
        messages=[{"role": "user", "content": "Bonjour"}],
        temperature=0.3,
        user="agent-7",
    )
    assert completion.object == "chat.completion"
    assert completion.model == "assistant"
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].message.content == ANSWER
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.completion_tokens == len(WORDS)
    assert completion.usage.total_tokens == (
        completion.usage.prompt_tokens + completion.usage.completion_tokens
    )


def test_the_openai_client_streams_with_usage(live_url: str, live_tenants: LiveTenants) -> None:
    client = openai_client(live_url, live_tenants.admin)
    stream = client.chat.completions.create(
        model="assistant",
        messages=[{"role": "user", "content": "Bonjour"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert all(chunk.object == "chat.completion.chunk" for chunk in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == ANSWER
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == len(WORDS)
    assert all(chunk.usage is None for chunk in chunks[:-1])


def test_the_openai_client_goes_through_a_fallback(
    live_url: str, live_tenants: LiveTenants, fake: RecordingProvider
) -> None:
    client = openai_client(live_url, live_tenants.agent)
    failed = fake.calls["e500"]
    completion = client.chat.completions.create(
        model="relay", messages=[{"role": "user", "content": "Bonjour"}]
    )
    assert completion.choices[0].message.content == ANSWER
    assert fake.calls["e500"] == failed + 1  # the failing deployment was tried first
    stream = client.chat.completions.create(
        model="relay", messages=[{"role": "user", "content": "Bonjour"}], stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == ANSWER


def test_the_openai_client_lists_models(live_url: str, live_tenants: LiveTenants) -> None:
    client = openai_client(live_url, live_tenants.agent)
    models = client.models.list()
    assert [model.id for model in models] == ["assistant", "relay", "drip", "europe"]
    assert all(model.object == "model" for model in models)


def test_the_openai_client_raises_its_own_errors_with_plumes_codes(
    live_url: str, live_tenants: LiveTenants
) -> None:
    messages: Any = [{"role": "user", "content": "Bonjour"}]
    bad = openai_client(live_url, "plm_" + "x" * 43)
    with pytest.raises(openai.AuthenticationError) as unauthenticated:
        bad.chat.completions.create(model="assistant", messages=messages)
    assert unauthenticated.value.status_code == 401
    assert unauthenticated.value.code == "unauthenticated"
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()

    muted = openai_client(live_url, live_tenants.muted)
    with pytest.raises(openai.PermissionDeniedError) as disabled:
        muted.chat.completions.create(model="assistant", messages=messages)
    assert disabled.value.code == "kind_disabled"
    assert looks_french(disabled.value.message)

    agent = openai_client(live_url, live_tenants.agent)
    with pytest.raises(openai.PermissionDeniedError) as abroad:
        agent.chat.completions.create(model="abroad", messages=messages, stream=True)
    assert abroad.value.code == "hosting_not_allowed"
    with pytest.raises(openai.NotFoundError) as unknown:
        agent.chat.completions.create(model="gpt-4o", messages=messages)
    assert unknown.value.code == "not_found"
    with pytest.raises(openai.UnprocessableEntityError) as invalid:
        agent.chat.completions.create(model="assistant", messages=[])
    assert invalid.value.code == "invalid_request"


def test_a_client_that_disconnects_mid_stream_stops_the_provider_call(
    live_url: str, live_tenants: LiveTenants, fake: RecordingProvider
) -> None:
    disconnects, finished = fake.disconnects, fake.drips_finished
    body = chat_body("drip", stream=True)
    headers = {"Authorization": f"Bearer {live_tenants.agent}"}
    with (
        httpx.Client(timeout=20) as http,
        http.stream("POST", f"{live_url}/v1/chat/completions", json=body, headers=headers) as r,
    ):
        assert r.status_code == 200
        seen = 0
        for line in r.iter_lines():
            if line.startswith("data:"):
                seen += 1
                if seen == 3:
                    break  # hang up after the first words
    sent_at_hang_up = fake.drip_sent
    deadline = time.monotonic() + 5
    while fake.disconnects == disconnects and time.monotonic() < deadline:
        time.sleep(0.05)
    assert fake.disconnects == disconnects + 1, "the provider's stream was not closed"
    assert fake.drips_finished == finished
    assert fake.drip_sent < DRIP_WORDS
    # A window for what must not happen (the stream going on for nobody): no event marks
    # it, so this one wait stays; the drip would send ten more chunks in it.
    time.sleep(0.2)
    assert fake.drip_sent <= sent_at_hang_up + 20  # nothing more is generated for nobody


@pytest.fixture(scope="module")
def paced_url(committed_database_url: str, live_tenants: LiveTenants) -> Iterator[str]:
    """A running Plume sending keep-alives after 50 ms of silence, in front of a provider
    that pauses after its first word."""
    with running_paced_provider(pause_s=0.5) as paced:
        router = router_for(
            group("assistant", deployment("pause", paced.api_base, provider="fake"), default=True)
        )
        settings = make_settings(committed_database_url, sse_keepalive_s=0.05)
        app = create_app(settings, provider_router=router)
        port = free_port()
        with serve_in_thread(app, port, lifespan="on"):
            yield f"http://127.0.0.1:{port}"


def test_the_openai_client_reads_a_stream_through_its_keep_alives(
    paced_url: str, live_tenants: LiveTenants
) -> None:
    headers = {"Authorization": f"Bearer {live_tenants.agent}"}
    body = chat_body("assistant", stream=True)
    raw = httpx.post(f"{paced_url}/v1/chat/completions", json=body, headers=headers, timeout=20)
    assert raw.status_code == 200
    assert raw.text.count(": keep-alive\n\n") >= 3  # the client below gets them too

    client = openai_client(paced_url, live_tenants.agent)
    stream = client.chat.completions.create(
        model="assistant", messages=[{"role": "user", "content": "Bonjour"}], stream=True
    )
    chunks = list(stream)
    assert all(chunk.object == "chat.completion.chunk" for chunk in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == PACED_ANSWER
    assert chunks[-1].choices[0].finish_reason == "stop"
