"""The hosting policy (a forbidden deployment is never called, fallbacks included), and
provider errors as the contract's errors."""

from __future__ import annotations

import pytest

from plume.errors import ContentRefused, HostingNotAllowed, ProviderUnavailable
from plume.routing.router import ProviderRouter
from tests.routing.helpers import EUROPE, EVERYWHERE, MESSAGES, PlumeFor, chat, failing, streamed
from tests.support.factories import Factory, Key
from tests.support.french import looks_french
from tests.support.problems import assert_openai_error
from tests.support.providers import (
    RecordingProvider,
    deployment,
    group,
    router_for,
)

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
