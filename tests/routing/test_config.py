"""The routing file (start-up errors name the line and the field), the built-in configuration
and the offline provider, and model groups: the default one, unknown ones, their
max_output_tokens."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from plume.config import ConfigurationError
from plume.errors import NotFound
from plume.routing.config import builtin_config, load_routing_file, parse_routing
from plume.routing.offline import CHAT_ANSWER
from plume.routing.router import ProviderRouter
from tests.routing.helpers import EUROPE, MESSAGES, PlumeFor, chat, failing, streamed
from tests.support.factories import Key
from tests.support.french import looks_french
from tests.support.providers import (
    RecordingProvider,
    deployment,
    group,
    offline,
    router_for,
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
