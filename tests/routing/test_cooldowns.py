"""Cooldowns are shared by every tenant of a process (one LiteLLM Router per hosting
policy): only failures that speak of the deployment count towards one, never those a tenant
can cause at will — a timeout (a long answer asked for), a refused request."""

from __future__ import annotations

from httpx import AsyncClient

from tests.calls.pacing import LONG, PacedProvider
from tests.routing.helpers import PlumeFor, chat
from tests.support.factories import Factory, Key
from tests.support.providers import RecordingProvider, deployment, group, router_for


async def _two_tenants(factory: Factory) -> tuple[Key, Key]:
    return (
        await factory.key(await factory.commune("Commune pressée")),
        await factory.key(await factory.commune("Commune patiente")),
    )


async def _provider(client: AsyncClient, key: Key, content: str = "Bonjour") -> str:
    response = await chat(client, key, content=content)
    assert response.status_code == 200, response.text
    return response.headers["x-plume-provider"]


async def test_a_tenant_whose_requests_time_out_does_not_send_others_to_the_fallback(
    plume: PlumeFor, factory: Factory, paced: PacedProvider, fake: RecordingProvider
) -> None:
    # `primary` answers at once, except a LONG answer, which takes longer than its timeout.
    client = await plume(
        router_for(
            group(
                "standard",
                deployment("ok-primary", paced.api_base, provider="primary", timeout_s=0.3),
                fallbacks=("backup",),
                default=True,
            ),
            group("backup", deployment("ok-backup", fake.api_base, provider="backup")),
        )
    )
    hurried, patient = await _two_tenants(factory)
    timeouts = paced.calls["ok-primary"]
    for _ in range(3):
        # Each of its requests times out on `primary`, and is answered by the fallback...
        assert await _provider(client, hurried, f"Écris un texte {LONG}.") == "backup"
    assert paced.calls["ok-primary"] == timeouts + 3  # ...after trying `primary` each time.
    # ...while the other tenant's next request is answered by `primary`, not cooled down.
    assert await _provider(client, patient) == "primary"


async def test_a_deployment_that_fails_is_still_cooled_down_for_everyone(
    plume: PlumeFor, factory: Factory, fake: RecordingProvider
) -> None:
    client = await plume(
        router_for(
            group(
                "standard",
                deployment("e500", fake.api_base, provider="failing"),
                fallbacks=("backup",),
                default=True,
            ),
            group("backup", deployment("ok-backup", fake.api_base, provider="backup")),
        )
    )
    first, second = await _two_tenants(factory)
    failed = fake.calls["e500"]
    assert await _provider(client, first) == "backup"
    assert await _provider(client, second) == "backup"
    assert fake.calls["e500"] == failed + 1  # the second request did not try it again
