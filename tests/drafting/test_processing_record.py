"""GET /v1/organization/processing: the record of processing (RGPD, art. 30) a commune can
show — purposes, retention, the handling of personal data, and the providers its requests
actually reached, from its usage records."""

from __future__ import annotations

from datetime import datetime

from httpx import AsyncClient

from tests.drafting.helpers import EXAMPLES, created
from tests.support.factories import Factory, Key


async def test_a_new_commune_has_processed_nothing_yet(client: AsyncClient, agent: Key) -> None:
    response = await client.get("/v1/organization/processing", headers=agent.headers)
    assert response.status_code == 200, response.text
    record = response.json()
    assert record["processors"] == []
    assert record["retention_days"] == 365
    assert record["personal_data"] == "pseudonymise"
    assert any("arrêtés" in purpose for purpose in record["purposes"])
    assert any("conversationnel" in purpose for purpose in record["purposes"])


async def test_the_providers_actually_used_are_listed_with_their_hosting(
    client: AsyncClient, fake_client: AsyncClient, agent: Key, factory: Factory
) -> None:
    courrier = EXAMPLES["courrier-haie-debordante"]
    await created(client, agent, courrier)  # the offline provider, in Plume
    await created(fake_client, agent, courrier)
    await created(fake_client, agent, courrier)
    record = (await fake_client.get("/v1/organization/processing", headers=agent.headers)).json()
    processors = {p["provider"]: p for p in record["processors"]}
    assert set(processors) == {"offline", "fake"}
    assert processors["offline"]["hosting"] == "local"
    assert processors["offline"]["requests"] == 1
    assert processors["fake"]["hosting"] == "fr"
    assert processors["fake"]["requests"] == 2
    first = datetime.fromisoformat(processors["fake"]["first_used"])
    last = datetime.fromisoformat(processors["fake"]["last_used"])
    assert first <= last

    # Another commune's record shows none of it.
    other = await factory.key(await factory.commune("Autre-Commune"), "agent")
    theirs = (await client.get("/v1/organization/processing", headers=other.headers)).json()
    assert theirs["processors"] == []


async def test_purposes_follow_the_kinds_the_policy_allows(
    client: AsyncClient, factory: Factory
) -> None:
    commune = await factory.commune(
        "Courriers-Seulement", allowed_kinds=["courrier"], retention_days=90
    )
    key = await factory.key(commune, "agent")
    record = (await client.get("/v1/organization/processing", headers=key.headers)).json()
    assert record["purposes"] == ["Aide à la rédaction des courriers de la collectivité"]
    assert record["retention_days"] == 90
