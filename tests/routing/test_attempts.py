"""plume_provider_attempts_total: every attempt at a deployment, with how it ended — the
failures a fallback covered, within a group (another deployment) and across groups — while
plume_provider_requests_total and plume_fallbacks_total keep counting requests."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import generate_latest

from plume.routing.router import ProviderRouter
from plume.routing.types import StreamState
from tests.metrics.helpers import value
from tests.routing.helpers import (
    EUROPE,
    FAILURE_MODES,
    MESSAGES,
    PlumeFor,
    backed_up,
    chat,
    streamed,
)
from tests.support.chat import sse_data
from tests.support.factories import Key
from tests.support.providers import RecordingProvider, deployment, group, router_for

OUTCOME_OF = {
    "dead": "server_error",
    "e500": "server_error",
    "e429": "rate_limited",
    "slow": "timeout",
    "notjson": "server_error",
}


def exposed() -> str:
    return generate_latest().decode()


def attempts(text: str, provider: str, deployment_id: str, outcome: str) -> float:
    return value(
        text,
        "plume_provider_attempts_total",
        provider=provider,
        deployment=deployment_id,
        model_group=deployment_id.rsplit("/", 1)[0],
        outcome=outcome,
    )


def added(before: str, after: str, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


async def test_a_failed_deployment_covered_by_its_sibling_is_counted(
    fake: RecordingProvider, plume: PlumeFor, agent: Key
) -> None:
    """Inside one group: LiteLLM picks a deployment at random, and after a failure the next
    attempt goes to the other one (the failed one cools down)."""
    router = router_for(
        group(
            "pair",
            deployment("e500", fake.api_base, provider="failing"),
            deployment("ok-pair", fake.api_base, provider="sound"),
        )
    )
    client = await plume(router)
    before, failed_before = (await client.get("/metrics")).text, fake.calls["e500"]
    requests = 0
    while fake.calls["e500"] == failed_before:
        assert requests < 30, "LiteLLM never picked the failing deployment"
        response = await chat(client, agent, "pair")
        assert response.status_code == 200, response.text
        requests += 1
    after = (await client.get("/metrics")).text
    assert attempts(after, "failing", "pair/0", "server_error") - attempts(
        before, "failing", "pair/0", "server_error"
    ) == (1)
    assert attempts(after, "sound", "pair/1", "success") - attempts(
        before, "sound", "pair/1", "success"
    ) == (requests)
    # Requests are counted once each, by the provider that answered: no group fell back.
    outcome = {"provider": "sound", "model": "openai/ok-pair", "outcome": "success"}
    assert added(before, after, "plume_provider_requests_total", **outcome) == requests
    fallback = {"from_provider": "failing", "to_provider": "sound"}
    assert added(before, after, "plume_fallbacks_total", **fallback) == 0


@pytest.mark.parametrize("mode", FAILURE_MODES)
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_a_failure_a_fallback_group_covered_is_counted_with_its_outcome(
    fake: RecordingProvider, plume: PlumeFor, agent: Key, mode: str, stream: bool
) -> None:
    client = await plume(backed_up(fake, mode))
    before = (await client.get("/metrics")).text
    response = await chat(client, agent, "primary", stream=stream)
    assert response.status_code == 200, response.text
    if stream:
        assert sse_data(response.text)[-1] == "[DONE]"
    after = (await client.get("/metrics")).text

    assert attempts(after, "failing", "primary/0", OUTCOME_OF[mode]) - attempts(
        before, "failing", "primary/0", OUTCOME_OF[mode]
    ) == (1)
    assert attempts(after, "backup", "backup/0", "success") - attempts(
        before, "backup", "backup/0", "success"
    ) == (1)
    # The request: one success by the fallback, and one fallback from the first provider.
    outcome = {"provider": "backup", "model": "openai/ok-backup", "outcome": "success"}
    assert added(before, after, "plume_provider_requests_total", **outcome) == 1
    fallback = {"from_provider": "failing", "to_provider": "backup"}
    assert added(before, after, "plume_fallbacks_total", **fallback) == 1
    # A stream's first word is timed for the group asked for, failed attempt included.
    ttft = "plume_time_to_first_token_seconds_count"
    assert added(before, after, ttft, model_group="primary") == (1 if stream else 0)


async def test_a_stream_cut_in_the_middle_is_a_failed_attempt(fake: RecordingProvider) -> None:
    router: ProviderRouter = router_for(
        group("cutting", deployment("cut", fake.api_base, provider="cutting"))
    )
    before = exposed()
    with pytest.raises(Exception, match="interrompu"):
        await streamed(router, "cutting")
    # LiteLLM reports a failure in the middle of a stream from a thread of its own.
    for _ in range(100):
        if attempts(exposed(), "cutting", "cutting/0", "server_error") > attempts(
            before, "cutting", "cutting/0", "server_error"
        ):
            break
        await asyncio.sleep(0.02)
    after = exposed()
    assert attempts(after, "cutting", "cutting/0", "server_error") - attempts(
        before, "cutting", "cutting/0", "server_error"
    ) == (1)
    assert attempts(after, "cutting", "cutting/0", "success") == attempts(
        before, "cutting", "cutting/0", "success"
    )


async def test_a_stream_abandoned_by_its_reader_is_counted_as_cancelled(
    fake: RecordingProvider,
) -> None:
    router = router_for(group("dripping", deployment("drip-a", fake.api_base, provider="drip")))
    before = exposed()
    deltas = router.stream(router.route("dripping", EUROPE), MESSAGES, StreamState())
    assert await anext(deltas)
    await deltas.aclose()
    after = exposed()
    assert attempts(after, "drip", "dripping/0", "cancelled") - attempts(
        before, "drip", "dripping/0", "cancelled"
    ) == (1)
