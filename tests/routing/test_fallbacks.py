"""Routing through LiteLLM past failures: fallbacks past every failure mode, plain and
streamed, a stream cut in the middle, and cooldowns."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal

import pytest

from plume.errors import ProviderUnavailable
from plume.routing.router import ProviderRouter
from plume.routing.types import StreamState
from tests.routing.helpers import (
    EUROPE,
    FAILURE_MODES,
    MESSAGES,
    PlumeFor,
    backed_up,
    chat,
    failing,
    streamed,
)
from tests.support.chat import sse_data
from tests.support.factories import Key
from tests.support.french import looks_french
from tests.support.providers import (
    ANSWER,
    RecordingProvider,
    deployment,
    group,
    router_for,
)

# --------------------------------------------------------------------------------------
# Fallbacks past each failure mode
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", FAILURE_MODES)
async def test_fallback_past_each_failure_mode(fake: RecordingProvider, mode: str) -> None:
    router = backed_up(fake, mode)
    before = fake.calls[mode]
    completion = await router.complete(router.route("primary", EUROPE), MESSAGES)
    assert completion.text == ANSWER
    assert completion.provider == "backup"
    assert completion.deployment_id == "backup/0"
    assert completion.fallbacks == 1
    if mode != "dead":
        assert fake.calls[mode] == before + 1  # the failing deployment was really tried
    # Priced from the routing file: 1 EUR and 2 EUR per million tokens.
    expected = (Decimal(completion.prompt_tokens) + 2 * completion.completion_tokens) / 10**6
    assert completion.cost_eur == expected
    assert completion.completion_tokens == len(ANSWER.split())


@pytest.mark.parametrize("mode", FAILURE_MODES)
async def test_streams_fall_back_past_each_failure_mode(fake: RecordingProvider, mode: str) -> None:
    router = backed_up(fake, mode)
    before = fake.calls[mode]
    text, state, settled = await streamed(router, "primary")
    assert text == ANSWER
    assert state.finished
    assert state.fallbacks == 1
    assert settled is not None
    assert settled.provider == "backup"
    if mode != "dead":
        assert fake.calls[mode] == before + 1


@pytest.mark.parametrize("mode", FAILURE_MODES)
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_chat_survives_each_failure_mode_by_fallback(
    fake: RecordingProvider, plume: PlumeFor, agent: Key, mode: str, stream: bool
) -> None:
    client = await plume(backed_up(fake, mode))
    response = await chat(client, agent, "primary", stream=stream)
    assert response.status_code == 200, response.text
    if stream:
        payloads = sse_data(response.text)
        assert payloads[-1] == "[DONE]"
        chunks = [json.loads(p) for p in payloads[:-1]]
        text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    else:
        assert response.headers["x-plume-provider"] == "backup"
        text = response.json()["choices"][0]["message"]["content"]
    assert text == ANSWER


async def test_fallbacks_count_the_groups_given_up(fake: RecordingProvider) -> None:
    router = router_for(
        group("first", failing(fake, "e500"), fallbacks=("second", "third")),
        group("second", failing(fake, "e429"), fallbacks=("third",)),
        group("third", deployment("ok-third", fake.api_base, provider="third")),
    )
    completion = await router.complete(router.route("first", EUROPE), MESSAGES)
    assert (completion.provider, completion.fallbacks) == ("third", 2)
    completion = await router.complete(router.route("third", EUROPE), MESSAGES)
    assert (completion.provider, completion.fallbacks) == ("third", 0)
    _, state, settled = await streamed(router, "first")
    assert settled is not None
    assert (settled.provider, state.fallbacks) == ("third", 2)


async def test_a_stream_cut_in_the_middle_ends_in_an_error_not_a_hang(
    fake: RecordingProvider, plume: PlumeFor, agent: Key
) -> None:
    router = router_for(
        group(
            "cutting", deployment("cut", fake.api_base, provider="cutting"), fallbacks=("backup",)
        ),
        group("backup", deployment("ok-backup", fake.api_base, provider="backup")),
    )
    state = StreamState()
    parts: list[str] = []
    route = router.route("cutting", EUROPE)

    async def collect() -> None:
        async with asyncio.timeout(10):
            async for delta in router.stream(route, MESSAGES, state):
                parts.append(delta)

    with pytest.raises(ProviderUnavailable):
        await collect()
    assert parts  # the first words came through before the cut
    assert "".join(parts) != ANSWER
    assert not state.finished

    client = await plume(
        router_for(
            group("cutting", deployment("cut", fake.api_base, provider="cutting")),
        )
    )
    async with asyncio.timeout(10):
        response = await chat(client, agent, "cutting", stream=True)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    payloads = sse_data(response.text)
    assert "[DONE]" not in payloads
    chunks = [json.loads(p) for p in payloads]
    assert chunks[0]["object"] == "chat.completion.chunk"
    assert chunks[0]["choices"][0]["delta"]["content"]
    error = chunks[-1]["error"]
    assert error["code"] == "provider_unavailable"
    assert looks_french(error["message"])


# --------------------------------------------------------------------------------------
# Cooldown: a failing deployment is skipped for a while
# --------------------------------------------------------------------------------------


async def _until_tried(
    router: ProviderRouter, fake: RecordingProvider, mode: str, model_group: str
) -> None:
    """Send requests until the failing deployment has been picked once more; each is still
    answered, by the group's other deployment."""
    before = fake.calls[mode]
    route = router.route(model_group, EUROPE)
    for _ in range(60):
        completion = await router.complete(route, MESSAGES)
        assert completion.provider == "healthy"
        if fake.calls[mode] > before:
            assert fake.calls[mode] == before + 1
            return
    pytest.fail(f"the {mode} deployment was never picked")


async def test_a_failing_deployment_is_skipped_by_the_next_requests(
    fake: RecordingProvider,
) -> None:
    router = router_for(
        group(
            "pair",
            failing(fake, "e500"),
            deployment("ok-pair", fake.api_base, provider="healthy"),
        ),
        cooldown_s=30,
    )
    await _until_tried(router, fake, "e500", "pair")
    failed, healthy = fake.calls["e500"], fake.calls["ok-pair"]
    route = router.route("pair", EUROPE)
    for _ in range(12):
        assert (await router.complete(route, MESSAGES)).provider == "healthy"
    assert fake.calls["e500"] == failed
    assert fake.calls["ok-pair"] == healthy + 12


async def test_a_cooled_down_deployment_is_tried_again_after_cooldown_s(
    fake: RecordingProvider,
) -> None:
    router = router_for(
        group(
            "pair",
            failing(fake, "e500"),
            deployment("ok-pair-2", fake.api_base, provider="healthy"),
        ),
        cooldown_s=0.5,
    )
    await _until_tried(router, fake, "e500", "pair")
    failed = fake.calls["e500"]
    route = router.route("pair", EUROPE)
    for _ in range(5):
        await router.complete(route, MESSAGES)
    assert fake.calls["e500"] == failed
    # A real wait: the cooldown is LiteLLM's own (its Router times it with the system clock,
    # which create_app's clock does not reach), so no FakeClock can move it on.
    await asyncio.sleep(0.7)
    await _until_tried(router, fake, "e500", "pair")


async def test_a_lone_failing_deployment_with_a_fallback_is_cooled_down(
    fake: RecordingProvider,
) -> None:
    router = router_for(
        group("solo", failing(fake, "e429"), fallbacks=("backup",)),
        group("backup", deployment("ok-backup", fake.api_base, provider="backup")),
    )
    before = fake.calls["e429"]
    route = router.route("solo", EUROPE)
    for _ in range(6):
        assert (await router.complete(route, MESSAGES)).provider == "backup"
    assert fake.calls["e429"] == before + 1
