"""The organisation's settings for its acts: population, publication mode (CGCT L. 2131-1),
the mayor and the secretary; set by the operator, shown on the organisation routes, never
inherited from the level above."""

from __future__ import annotations

import pytest
from httpx import AsyncClient

from tests.support.factories import Factory, Key
from tests.support.problems import assert_problem

ADMIN = "/v1/admin/organizations"
MAYOR = {"name": "Hélène Marais", "title": "Maire"}
SECRETARY = {"name": "Chantal Roux", "title": "Secrétaire générale de mairie"}


@pytest.fixture
async def operator_key(factory: Factory) -> Key:
    return await factory.operator_key()


async def test_the_settings_round_trip_and_the_commune_sees_them(
    client: AsyncClient, factory: Factory, operator_key: Key
) -> None:
    commune = await factory.commune("Les Noues")
    agent = await factory.key(commune, "agent")
    default = (await client.get("/v1/organization", headers=agent.headers)).json()["policy"]
    assert default["publication_mode"] == "electronique"
    assert default["population"] is None
    assert default["mayor"] is None

    settings = {
        "population": 480,
        "publication_mode": "papier",
        "mayor": MAYOR,
        "secretary": SECRETARY,
    }
    response = await client.patch(
        f"{ADMIN}/{commune.id}", json={"policy": settings}, headers=operator_key.headers
    )
    assert response.status_code == 200, response.text
    assert response.json()["own_policy"] == {**settings}
    seen = (await client.get("/v1/organization", headers=agent.headers)).json()["policy"]
    assert {key: seen[key] for key in settings} == settings

    # null inherits again: here, the defaults (settings are never an EPCI's).
    response = await client.patch(
        f"{ADMIN}/{commune.id}",
        json={"policy": {"publication_mode": None, "mayor": None}},
        headers=operator_key.headers,
    )
    assert response.status_code == 200, response.text
    seen = (await client.get("/v1/organization", headers=agent.headers)).json()["policy"]
    assert seen["publication_mode"] == "electronique"
    assert seen["mayor"] is None
    assert seen["secretary"] == SECRETARY


async def test_an_epcis_settings_are_not_its_communes(
    client: AsyncClient, factory: Factory
) -> None:
    epci = await factory.epci(population=12_000, mayor=MAYOR)
    commune = await factory.commune("Les Noues", parent=epci)
    agent = await factory.key(commune, "agent")
    seen = (await client.get("/v1/organization", headers=agent.headers)).json()["policy"]
    assert seen["population"] is None
    assert seen["mayor"] is None


@pytest.mark.parametrize(
    "own",
    [
        {"population": 3_500, "publication_mode": "affichage"},
        {"population": 12_000, "publication_mode": "papier"},
        {"publication_mode": "affichage"},
    ],
)
async def test_affichage_and_paper_are_for_communes_under_3500_inhabitants(
    client: AsyncClient, factory: Factory, operator_key: Key, own: dict[str, object]
) -> None:
    commune = await factory.commune("Les Noues")
    response = await client.patch(
        f"{ADMIN}/{commune.id}", json={"policy": own}, headers=operator_key.headers
    )
    body = assert_problem(response, 422, "invalid_request", field="policy.publication_mode")
    assert "3 500" in body["errors"][0]["message"]

    # At creation likewise.
    response = await client.post(
        ADMIN,
        json={"kind": "commune", "name": "Autre", "insee_code": "27999", "policy": own},
        headers=operator_key.headers,
    )
    assert_problem(response, 422, "invalid_request", field="policy.publication_mode")


async def test_a_commune_that_grows_past_3500_must_publish_electronically(
    client: AsyncClient, factory: Factory, operator_key: Key
) -> None:
    commune = await factory.commune("Les Noues", population=3_499, publication_mode="affichage")
    response = await client.patch(
        f"{ADMIN}/{commune.id}",
        json={"policy": {"population": 3_600}},
        headers=operator_key.headers,
    )
    assert_problem(response, 422, "invalid_request", field="policy.publication_mode")
    response = await client.patch(
        f"{ADMIN}/{commune.id}",
        json={"policy": {"population": 3_600, "publication_mode": "electronique"}},
        headers=operator_key.headers,
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("own", "field"),
    [
        ({"population": -1}, "policy.population"),
        ({"publication_mode": "pigeon"}, "policy.publication_mode"),
        ({"mayor": {"name": "Hélène Marais"}}, "policy.mayor.title"),
        ({"secretary": {"name": " ", "title": "Secrétaire"}}, "policy.secretary.name"),
    ],
)
async def test_settings_are_validated(
    client: AsyncClient,
    factory: Factory,
    operator_key: Key,
    own: dict[str, object],
    field: str,
) -> None:
    commune = await factory.commune("Les Noues")
    response = await client.patch(
        f"{ADMIN}/{commune.id}", json={"policy": own}, headers=operator_key.headers
    )
    assert_problem(response, 422, "invalid_request", field=field)
