"""Routing through LiteLLM: the routing file, fallbacks past every failure mode, cooldowns,
the hosting policy (a forbidden deployment is never called) and the built-in configuration.

Most tests run against the local fake provider (tests/support/providers.py), whose modes are
chosen by the deployment's model: `ok…` answers, `e500`, `e429` (with Retry-After), `slow`
(answers after the deployment's timeout), `notjson`, `cut` (a stream dropped in the middle)
and `refuse` (a content refusal). Its call counters prove which deployment was really
called. Routing files set `num_retries: 0` unless retries are the point, so that failures
cost no backoff.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from httpx import AsyncClient

from plume.config import ConfigurationError
from plume.errors import ContentRefused, HostingNotAllowed, NotFound, ProviderUnavailable
from plume.routing.config import builtin_config, load_routing_file, parse_routing
from plume.routing.offline import CHAT_ANSWER
from plume.routing.router import ProviderRouter
from plume.routing.types import Completion, StreamState
from tests.support.chat import chat_body, sse_data
from tests.support.clients import AppFactory, client_for
from tests.support.factories import Factory, Key
from tests.support.french import looks_french
from tests.support.problems import assert_openai_error
from tests.support.providers import (
    ANSWER,
    RecordingProvider,
    dead_api_base,
    deployment,
    group,
    offline,
    router_for,
)

EUROPE = frozenset({"fr", "eu"})  # the operator's default policy
EVERYWHERE = frozenset({"fr", "eu", "non_eu"})
MESSAGES = [{"role": "user", "content": "Rédige une phrase de bienvenue."}]
SLOW_TIMEOUT_S = 0.4
FAILURE_MODES = ["dead", "e500", "e429", "slow", "notjson"]


PlumeFor = Callable[[ProviderRouter], Awaitable[AsyncClient]]


@pytest.fixture
async def plume(make_app: AppFactory) -> AsyncIterator[PlumeFor]:
    """`await plume(router)`: a client for the application routed by `router`."""
    async with AsyncExitStack() as stack:

        async def build(router: ProviderRouter) -> AsyncClient:
            return await stack.enter_async_context(client_for(make_app(provider_router=router)))

        yield build


def failing(fake: RecordingProvider, mode: str, **extra: Any) -> dict[str, Any]:
    """A deployment that fails in `mode` (`dead`: nothing listens at its address)."""
    if mode == "dead":
        return deployment("ok-dead", dead_api_base(), provider="failing", **extra)
    timeout = SLOW_TIMEOUT_S if mode == "slow" else 1
    return deployment(mode, fake.api_base, provider="failing", timeout_s=timeout, **extra)


def backed_up(fake: RecordingProvider, mode: str) -> ProviderRouter:
    """`primary` fails in `mode` and falls back to `backup`, which answers."""
    return router_for(
        group("primary", failing(fake, mode), fallbacks=("backup",)),
        group("backup", deployment("ok-backup", fake.api_base, provider="backup")),
    )


async def streamed(
    router: ProviderRouter, route_to: str, hosting: frozenset[str] = EUROPE
) -> tuple[str, StreamState, Completion | None]:
    state = StreamState()
    started = time.perf_counter()
    route = router.route(route_to, hosting)
    async with asyncio.timeout(10):
        parts = [delta async for delta in router.stream(route, MESSAGES, state)]
    return "".join(parts), state, router.settle_stream(state, 0, started)


async def chat(client: AsyncClient, key: Key, model: str | None = None, **extra: Any) -> Any:
    return await client.post(
        "/v1/chat/completions", headers=key.headers, json=chat_body(model, **extra)
    )


# --------------------------------------------------------------------------------------
# The routing file: start-up errors name the line and the field
# --------------------------------------------------------------------------------------

VALID = """\
num_retries: 0
model_groups:
  - name: standard
    default: true
    fallbacks: [sovereign]
    deployments:
      - model: mistral/mistral-small-latest
        api_key_env: MISTRAL_API_KEY
        hosting: eu
        price_per_million_tokens: {input: 0.1, output: 0.3}
        timeout_s: 30
  - name: sovereign
    max_output_tokens: 512
    deployments:
      - model: openai/albert-large
        api_base: https://albert.api.etalab.gouv.fr/v1
        hosting: fr
        price_per_million_tokens: {input: 0, output: 0}
"""


def test_a_valid_routing_file_is_read_as_written() -> None:
    config = parse_routing(VALID, "test.yaml")
    assert [g.name for g in config.model_groups] == ["standard", "sovereign"]
    assert config.default_group.name == "standard"
    assert config.num_retries == 0
    standard, sovereign = config.model_groups
    assert standard.fallbacks == ["sovereign"]
    assert standard.deployments[0].hosting == "eu"
    assert standard.deployments[0].timeout_s == 30
    assert standard.deployments[0].price_per_million_tokens.output == Decimal("0.3")
    assert sovereign.max_output_tokens == 512
    assert sovereign.deployments[0].api_base == "https://albert.api.etalab.gouv.fr/v1"


# (name, file text, line at fault, words the message must contain)
MALFORMED: list[tuple[str, str, int, list[str]]] = [
    (
        "not YAML",
        VALID.replace("        hosting: eu\n", "       hosting: eu\n"),
        9,
        [],
    ),
    (
        "deployment without a price",
        VALID.replace("        price_per_million_tokens: {input: 0.1, output: 0.3}\n", ""),
        7,
        ["model_groups[0].deployments[0].price_per_million_tokens"],
    ),
    (
        "price without output",
        VALID.replace("{input: 0, output: 0}", "{input: 0}"),
        18,
        ["model_groups[1].deployments[0].price_per_million_tokens.output"],
    ),
    (
        "unknown fallback group",
        VALID.replace("fallbacks: [sovereign]", "fallbacks: [souverain]"),
        5,
        ["fallbacks", "souverain"],
    ),
    (
        "unknown key in a deployment",
        VALID.replace("        timeout_s: 30\n", "        timeout_s: 30\n        region: paris\n"),
        12,
        ["model_groups[0].deployments[0].region"],
    ),
    (
        "unknown top-level key",
        VALID.replace("num_retries: 0\n", "num_retries: 0\nretries: 3\n"),
        2,
        ["retries"],
    ),
    (
        "wrong type",
        VALID.replace("timeout_s: 30", "timeout_s: bientôt"),
        11,
        ["model_groups[0].deployments[0].timeout_s"],
    ),
    (
        "unknown hosting",
        VALID.replace("hosting: eu", "hosting: usa"),
        9,
        ["model_groups[0].deployments[0].hosting"],
    ),
    (
        "model without a provider prefix",
        VALID.replace("mistral/mistral-small-latest", "mistral-small-latest"),
        7,
        ["model_groups[0].deployments[0].model"],
    ),
]


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [case[1:] for case in MALFORMED],
    ids=[case[0] for case in MALFORMED],
)
def test_a_malformed_routing_file_stops_start_up_naming_line_and_field(
    text: str, line: int, words: list[str]
) -> None:
    with pytest.raises(ConfigurationError) as raised:
        parse_routing(text, "test.yaml")
    message = str(raised.value)
    assert "\n" not in message.strip(), message
    assert message.startswith("PLUME_MODELS_FILE"), message
    assert f"test.yaml:{line}:" in message, message
    for word in words:
        assert word in message, message


def test_load_routing_file_names_the_file(tmp_path: Path) -> None:
    good = tmp_path / "models.yaml"
    good.write_text(VALID, encoding="utf-8")
    assert load_routing_file(good).default_group.name == "standard"

    unpriced = tmp_path / "sans-prix.yaml"
    unpriced.write_text(VALID.replace("{input: 0, output: 0}", "null"), encoding="utf-8")
    with pytest.raises(ConfigurationError) as raised:
        load_routing_file(unpriced)
    assert f"{unpriced}:18:" in str(raised.value)
    assert "price_per_million_tokens" in str(raised.value)

    missing = tmp_path / "absent.yaml"
    with pytest.raises(ConfigurationError) as raised:
        load_routing_file(missing)
    assert str(missing) in str(raised.value)
    assert "\n" not in str(raised.value).strip()


# --------------------------------------------------------------------------------------
# The built-in configuration and the offline provider
# --------------------------------------------------------------------------------------


def test_builtin_config_classes_providers_as_the_contract_says() -> None:
    config = builtin_config(
        environ={"MISTRAL_API_KEY": "x", "ALBERT_API_KEY": "y", "OPENAI_API_KEY": "z"}
    )
    hosting = {d.provider_name: d.hosting for g in config.model_groups for d in g.deployments}
    assert hosting == {"mistral": "eu", "albert": "fr", "openai": "non_eu", "offline": "fr"}
    assert config.default_group.name != "offline"

    everyone = builtin_config(
        environ={
            name: "k"
            for name in (
                "MISTRAL_API_KEY",
                "ALBERT_API_KEY",
                "OPENAI_API_KEY",
                "OVHCLOUD_API_KEY",
                "SCALEWAY_API_KEY",
                "ANTHROPIC_API_KEY",
            )
        }
    )
    hosting = {d.provider_name: d.hosting for g in everyone.model_groups for d in g.deployments}
    assert hosting == {
        "albert": "fr",
        "ovhcloud": "fr",
        "scaleway": "fr",
        "mistral": "eu",
        "openai": "non_eu",
        "anthropic": "non_eu",
        "offline": "fr",
    }
    # Every deployment has a price, and the offline provider is the last resort of each.
    for model_group in everyone.model_groups:
        assert all(d.price_per_million_tokens is not None for d in model_group.deployments)
        if model_group.name != "offline":
            assert model_group.fallbacks[-1] == "offline"


def test_builtin_config_without_any_key_is_the_offline_group_alone() -> None:
    config = builtin_config(environ={})
    assert [g.name for g in config.model_groups] == ["offline"]
    only = config.model_groups[0]
    assert only.default
    assert config.default_group is only
    assert [d.provider_name for d in only.deployments] == ["offline"]
    assert only.deployments[0].price_per_million_tokens.input == 0


async def test_the_builtin_config_without_keys_serves_through_the_offline_provider() -> None:
    router = ProviderRouter(builtin_config(environ={}), environ={})
    route = router.route(None, EUROPE)
    assert route.group.name == "offline"

    completion = await router.complete(route, MESSAGES)
    assert completion.provider == "offline"
    assert completion.text == CHAT_ANSWER
    assert "aucun fournisseur" in completion.text
    assert completion.prompt_tokens > 0
    assert completion.completion_tokens > 0
    assert completion.cost_eur == 0
    assert completion.fallbacks == 0

    text, state, settled = await streamed(router, "offline")
    assert text == CHAT_ANSWER
    assert state.finished
    assert settled is not None
    assert settled.provider == "offline"
    assert settled.completion_tokens > 0


async def test_the_offline_provider_is_a_last_resort_fallback(fake: RecordingProvider) -> None:
    router = router_for(
        group("standard", failing(fake, "e500"), fallbacks=("offline",)),
        group("offline", offline()),
    )
    completion = await router.complete(router.route("standard", EUROPE), MESSAGES)
    assert completion.provider == "offline"
    assert completion.text == CHAT_ANSWER
    assert completion.fallbacks == 1


async def test_a_deployment_whose_key_variable_is_unset_is_skipped(
    fake: RecordingProvider,
) -> None:
    groups = (
        group(
            "keyed",
            deployment("ok-keyed", fake.api_base, api_key_env="PLUME_TEST_FAKE_KEY"),
            deployment("ok-keyless", fake.api_base),
        ),
    )
    router = router_for(*groups, environ={})
    route = router.route("keyed", EUROPE)
    for _ in range(8):
        assert (await router.complete(route, MESSAGES)).deployment_id == "keyed/1"
    assert fake.calls["ok-keyed"] == 0

    # With the variable set, the deployment serves, with that key.
    with_key = router_for(*groups, environ={"PLUME_TEST_FAKE_KEY": "sk-fake-123"})
    route = with_key.route("keyed", EUROPE)
    for _ in range(40):
        await with_key.complete(route, MESSAGES)
        if fake.calls["ok-keyed"]:
            break
    assert fake.calls["ok-keyed"] >= 1
    keyed = [r.authorization for r in fake.received if r.body["model"] == "ok-keyed"]
    assert keyed
    assert set(keyed) == {"Bearer sk-fake-123"}


# --------------------------------------------------------------------------------------
# Groups: default, unknown, max_output_tokens
# --------------------------------------------------------------------------------------


async def test_the_default_group_serves_requests_that_name_none(fake: RecordingProvider) -> None:
    router = router_for(
        group("first", deployment("ok-first", fake.api_base, provider="first")),
        group("chosen", deployment("ok-chosen", fake.api_base, provider="chosen"), default=True),
    )
    route = router.route(None, EUROPE)
    assert route.group.name == "chosen"
    assert (await router.complete(route, MESSAGES)).provider == "chosen"
    # Without a `default`, the first group.
    plain = router_for(
        group("first", deployment("ok-first", fake.api_base)), group("other", offline())
    )
    assert plain.route(None, EUROPE).group.name == "first"
    with pytest.raises(NotFound) as raised:
        router.route("gpt-5", EUROPE)
    assert looks_french(raised.value.detail)


async def test_max_output_tokens_caps_every_request_to_the_group(
    fake: RecordingProvider, plume: PlumeFor, agent: Key
) -> None:
    router = router_for(
        group("capped", deployment("ok-capped", fake.api_base), max_output_tokens=64)
    )
    route = router.route("capped", EUROPE)

    def sent_limit() -> int:
        body = fake.bodies("ok-capped")[-1]
        limits = {body.get("max_tokens"), body.get("max_completion_tokens")} - {None}
        assert len(limits) == 1, body
        return int(limits.pop())

    await router.complete(route, MESSAGES)
    assert sent_limit() == 64
    await router.complete(route, MESSAGES, max_tokens=4000)
    assert sent_limit() == 64
    await router.complete(route, MESSAGES, max_tokens=10)
    assert sent_limit() == 10
    await streamed(router, "capped")
    assert sent_limit() == 64

    client = await plume(router)
    response = await chat(client, agent, "capped", max_tokens=100_000)
    assert response.status_code == 200, response.text
    assert sent_limit() == 64
    response = await chat(client, agent, "capped", max_completion_tokens=12)
    assert response.status_code == 200, response.text
    assert sent_limit() == 12


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


# --------------------------------------------------------------------------------------
# Hosting policy: a forbidden deployment is never called, fallbacks included
# --------------------------------------------------------------------------------------


def abroad_router(fake: RecordingProvider) -> ProviderRouter:
    return router_for(
        # A non-EU deployment that would answer, falling back to an EU one.
        group(
            "abroad",
            deployment("ok-abroad", fake.api_base, hosting="non_eu", provider="abroad"),
            fallbacks=("europe",),
        ),
        group("europe", deployment("ok-europe", fake.api_base, hosting="eu", provider="europe")),
        # A failing French deployment whose fallback mixes non-EU and EU deployments.
        group("mixed", failing(fake, "e500", hosting="fr"), fallbacks=("spread",)),
        group(
            "spread",
            deployment("ok-spread-abroad", fake.api_base, hosting="non_eu", provider="abroad"),
            deployment("ok-spread-eu", fake.api_base, hosting="eu", provider="europe"),
        ),
        group("france", deployment("ok-france", fake.api_base, hosting="fr", provider="fr")),
    )


async def test_the_router_never_calls_a_deployment_the_policy_forbids(
    fake: RecordingProvider,
) -> None:
    router = abroad_router(fake)
    route = router.route("abroad", EUROPE)
    assert route.chain == ("europe",)
    before = fake.calls["ok-abroad"], fake.calls["ok-spread-abroad"]
    for _ in range(10):
        completion = await router.complete(route, MESSAGES)
        assert completion.provider == "europe"
        _, _, settled = await streamed(router, "abroad")
        assert settled is not None
        assert settled.provider == "europe"
        assert (await router.complete(router.route("mixed", EUROPE), MESSAGES)).provider == (
            "europe"
        )
    assert (fake.calls["ok-abroad"], fake.calls["ok-spread-abroad"]) == before

    # The same router, for a policy that allows non-EU hosting, does call them: the counts
    # above would have moved had the policy not been enforced.
    completion = await router.complete(router.route("abroad", EVERYWHERE), MESSAGES)
    assert completion.provider == "abroad"
    assert completion.fallbacks == 0
    assert fake.calls["ok-abroad"] == before[0] + 1


async def test_hosting_not_allowed_when_nothing_allowed_can_serve_the_group(
    fake: RecordingProvider,
) -> None:
    router = abroad_router(fake)
    with pytest.raises(HostingNotAllowed) as raised:
        router.route("europe", frozenset({"fr"}))
    assert "France" in raised.value.detail
    assert looks_french(raised.value.detail)
    with pytest.raises(HostingNotAllowed):
        router.route("abroad", frozenset({"fr"}))
    assert router.route("france", frozenset({"fr"})).chain == ("france",)
    assert [g.name for g in router.usable_groups(frozenset({"fr"}))] == ["mixed", "france"]


async def test_chat_honours_the_tenants_hosting_policy(
    fake: RecordingProvider, plume: PlumeFor, factory: Factory
) -> None:
    client = await plume(abroad_router(fake))
    european = await factory.key(await factory.commune(allowed_hosting=["fr", "eu"]))
    forbidden = ("ok-abroad", "ok-spread-abroad")
    before = {model: fake.calls[model] for model in forbidden}
    for stream in (False, True, False):
        for model in ("abroad", "mixed"):
            response = await chat(client, european, model, stream=stream)
            assert response.status_code == 200, response.text
            if not stream:
                assert response.headers["x-plume-provider"] == "europe"
    assert {model: fake.calls[model] for model in forbidden} == before

    # Control: once the operator allows non-EU hosting, a tenant that asks for it is served
    # by the non-EU deployment, while the European tenant still never reaches it.
    operator = await factory.operator_key()
    widened = await client.patch(
        f"/v1/admin/organizations/{operator.organization.id}",
        headers=operator.headers,
        json={"policy": {"allowed_hosting": ["fr", "eu", "non_eu"]}},
    )
    assert widened.status_code == 200, widened.text
    worldwide = await factory.key(await factory.commune(allowed_hosting=["non_eu"]))
    response = await chat(client, worldwide, "abroad")
    assert response.status_code == 200, response.text
    assert response.headers["x-plume-provider"] == "abroad"
    assert fake.calls["ok-abroad"] == before["ok-abroad"] + 1
    response = await chat(client, european, "abroad")
    assert response.headers["x-plume-provider"] == "europe"
    assert fake.calls["ok-abroad"] == before["ok-abroad"] + 1


async def test_chat_answers_403_hosting_not_allowed_in_openai_shape(
    fake: RecordingProvider, plume: PlumeFor, factory: Factory
) -> None:
    client = await plume(abroad_router(fake))
    french_only = await factory.key(await factory.commune(allowed_hosting=["fr"]))
    received = len(fake.received)
    for model in ("europe", "abroad"):
        for stream in (False, True):
            response = await chat(client, french_only, model, stream=stream)
            error = assert_openai_error(response, 403, "hosting_not_allowed")
            assert "France" in error["message"]  # it names the policy
    assert len(fake.received) == received  # nothing was sent anywhere
    models = await client.get("/v1/models", headers=french_only.headers)
    assert models.status_code == 200, models.text
    assert [m["id"] for m in models.json()["data"]] == ["mixed", "france"]


# --------------------------------------------------------------------------------------
# Provider errors become the contract's errors
# --------------------------------------------------------------------------------------


async def test_every_deployment_failing_is_502_provider_unavailable(
    fake: RecordingProvider, plume: PlumeFor, agent: Key
) -> None:
    router = router_for(
        group(
            "doomed",
            failing(fake, "e500"),
            failing(fake, "dead"),
            fallbacks=("doomed-too",),
        ),
        group("doomed-too", failing(fake, "notjson"), failing(fake, "e429")),
    )
    before = {mode: fake.calls[mode] for mode in ("e500", "notjson", "e429")}
    with pytest.raises(ProviderUnavailable) as raised:
        await router.complete(router.route("doomed", EUROPE), MESSAGES)
    assert looks_french(raised.value.detail)
    assert {mode: fake.calls[mode] - before[mode] for mode in before} == {
        "e500": 1,
        "notjson": 1,
        "e429": 1,
    }

    client = await plume(
        router_for(
            group("doomed", failing(fake, "e500"), fallbacks=("doomed-too",)),
            group("doomed-too", failing(fake, "dead")),
        )
    )
    for stream in (False, True):
        response = await chat(client, agent, "doomed", stream=stream)
        assert_openai_error(response, 502, "provider_unavailable")


async def test_a_content_refusal_is_422(
    fake: RecordingProvider, plume: PlumeFor, agent: Key
) -> None:
    router = router_for(group("prude", deployment("refuse", fake.api_base)))
    with pytest.raises(ContentRefused):
        await router.complete(router.route("prude", EUROPE), MESSAGES)

    client = await plume(router)
    before = fake.calls["refuse"]
    for stream in (False, True):
        response = await chat(client, agent, "prude", stream=stream)
        error = assert_openai_error(response, 422, "content_refused")
        assert "refus" in error["message"]
    assert fake.calls["refuse"] == before + 2
