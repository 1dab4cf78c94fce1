"""Quotas as the operator sets them and an EPCI splits its own among its communes: validation,
who may, and what a commune reads."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from httpx import AsyncClient

from tests.support.factories import Factory
from tests.support.problems import assert_problem
from tests.support.quotas import ARTICLE, set_quotas

# --------------------------------------------------------------------------------------
# Setting quotas
# --------------------------------------------------------------------------------------


async def test_the_operator_sets_and_reads_quotas_and_the_list_replaces_the_old_one(
    client: AsyncClient, factory: Factory
) -> None:
    operator = await factory.operator_key()
    commune = await factory.commune()
    response = await set_quotas(
        client,
        operator,
        commune,
        [
            {"metric": "requests", "period": "day", "limit": 50},
            {"metric": "cost_eur", "period": "month", "limit": 12.5},
        ],
    )
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    assert {(i["metric"], i["period"], i["limit"]) for i in items} == {
        ("requests", "day", 50),
        ("cost_eur", "month", 12.5),
    }
    first = next(i for i in items if i["metric"] == "requests")
    assert first["used"] == 0
    assert first["reserved"] == 0
    assert first["remaining"] == 50
    # The next Paris midnight, with its offset.
    assert first["resets_at"] == "2026-11-28T00:00:00+01:00"

    response = await set_quotas(
        client, operator, commune, [{"metric": "tokens", "period": "minute", "limit": 9000}]
    )
    assert response.status_code == 200, response.text
    read = await client.get(
        f"/v1/admin/organizations/{commune.id}/quotas", headers=operator.headers
    )
    assert [(i["metric"], i["period"]) for i in read.json()["items"]] == [("tokens", "minute")]

    cleared = await set_quotas(client, operator, commune, [])
    assert cleared.json() == {"items": []}


@pytest.mark.parametrize(
    ("quotas", "field"),
    [
        ([{"metric": "requests", "period": "day", "limit": 0}], "[0].limit"),
        ([{"metric": "requests", "period": "day", "limit": -5}], "[0].limit"),
        ([{"metric": "requests", "period": "day", "limit": 2.5}], "[0].limit"),
        ([{"metric": "pages", "period": "day", "limit": 5}], "[0].metric"),
        ([{"metric": "tokens", "period": "week", "limit": 5}], "[0].period"),
        ([{"metric": "tokens", "period": "day"}], "[0].limit"),
        ([{"metric": "tokens", "period": "day", "limit": 5, "hard": True}], "[0].hard"),
        (
            [
                {"metric": "tokens", "period": "day", "limit": 5},
                {"metric": "tokens", "period": "day", "limit": 7},
            ],
            "[1].period",
        ),
    ],
)
async def test_invalid_quotas_are_422_naming_the_field(
    client: AsyncClient, factory: Factory, quotas: list[dict[str, Any]], field: str
) -> None:
    operator = await factory.operator_key()
    commune = await factory.commune()
    body = assert_problem(
        await set_quotas(client, operator, commune, quotas), 422, "invalid_request"
    )
    assert field in {e["field"] for e in body["errors"]}, body
    read = await client.get(
        f"/v1/admin/organizations/{commune.id}/quotas", headers=operator.headers
    )
    assert read.json() == {"items": []}


async def test_only_the_operator_sets_quotas_and_an_unknown_organisation_is_404(
    client: AsyncClient, factory: Factory
) -> None:
    commune = await factory.commune()
    admin = await factory.key(commune, "tenant_admin")
    quotas = [{"metric": "requests", "period": "day", "limit": 1000}]
    assert_problem(await set_quotas(client, admin, commune, quotas), 403, "forbidden")
    operator = await factory.operator_key()
    response = await client.put(
        f"/v1/admin/organizations/{uuid.uuid4()}/quotas", json=quotas, headers=operator.headers
    )
    assert_problem(response, 404, "not_found")


# --------------------------------------------------------------------------------------
# Reading quotas, and an EPCI's split
# --------------------------------------------------------------------------------------


async def test_a_commune_reads_its_quotas_and_its_ancestors_with_use(
    client: AsyncClient, factory: Factory
) -> None:
    operator = await factory.operator_key()
    epci = await factory.epci()
    commune = await factory.commune(parent=epci)
    await set_quotas(
        client, operator, epci, [{"metric": "requests", "period": "month", "limit": 40}]
    )
    await set_quotas(
        client, operator, commune, [{"metric": "requests", "period": "day", "limit": 4}]
    )
    agent = await factory.key(commune)
    await client.post("/v1/drafts", json=ARTICLE, headers=agent.headers)

    response = await client.get("/v1/quotas", headers=agent.headers)
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    assert [(i["organization_id"], i["limit"], i["used"], i["remaining"]) for i in items] == [
        (str(commune.id), 4, 1, 3),
        (str(epci.id), 40, 1, 39),
    ]
    assert items[1]["resets_at"] == "2026-12-01T00:00:00+01:00"


async def test_an_epci_admin_splits_its_allowance_never_beyond_its_own(
    client: AsyncClient, factory: Factory
) -> None:
    operator = await factory.operator_key()
    epci = await factory.epci("CC Partage")
    first = await factory.commune(parent=epci)
    second = await factory.commune(parent=epci)
    await set_quotas(
        client, operator, epci, [{"metric": "tokens", "period": "month", "limit": 1000}]
    )
    admin = await factory.key(epci, "tenant_admin")
    give = [{"metric": "tokens", "period": "month", "limit": 600}]
    ok = await client.put(
        f"/v1/quotas?organization_id={first.id}", json=give, headers=admin.headers
    )
    assert ok.status_code == 200, ok.text
    assert ok.json()["items"][0]["limit"] == 600

    too_much = await client.put(
        f"/v1/quotas?organization_id={second.id}", json=give, headers=admin.headers
    )
    body = assert_problem(too_much, 422, "invalid_request")
    assert body["errors"][0]["field"] == "[0].limit"
    assert "400" in body["errors"][0]["message"]
    fits = [{"metric": "tokens", "period": "month", "limit": 400}]
    response = await client.put(
        f"/v1/quotas?organization_id={second.id}", json=fits, headers=admin.headers
    )
    assert response.status_code == 200, response.text
    # Changing the first commune's share counts only the others against the pool.
    lower = [{"metric": "tokens", "period": "month", "limit": 500}]
    response = await client.put(
        f"/v1/quotas?organization_id={first.id}", json=lower, headers=admin.headers
    )
    assert response.status_code == 200, response.text

    # The EPCI admin reads one of its communes' quotas with its own.
    read = await client.get(f"/v1/quotas?organization_id={first.id}", headers=admin.headers)
    assert [i["organization_id"] for i in read.json()["items"]] == [str(first.id), str(epci.id)]


async def test_only_an_epci_admin_splits_and_only_among_its_own_communes(
    client: AsyncClient, factory: Factory
) -> None:
    epci = await factory.epci()
    commune = await factory.commune(parent=epci)
    other_epci = await factory.epci()
    stranger = await factory.commune(parent=other_epci)
    quotas = [{"metric": "requests", "period": "day", "limit": 5}]

    agent = await factory.key(epci, "agent")
    assert_problem(
        await client.put(
            f"/v1/quotas?organization_id={commune.id}", json=quotas, headers=agent.headers
        ),
        403,
        "forbidden",
    )
    commune_admin = await factory.key(commune, "tenant_admin")
    assert_problem(
        await client.put(
            f"/v1/quotas?organization_id={commune.id}", json=quotas, headers=commune_admin.headers
        ),
        403,
        "forbidden",
    )
    admin = await factory.key(epci, "tenant_admin")
    assert_problem(
        await client.put(
            f"/v1/quotas?organization_id={stranger.id}", json=quotas, headers=admin.headers
        ),
        404,
        "not_found",
    )
    assert_problem(
        await client.get(f"/v1/quotas?organization_id={stranger.id}", headers=admin.headers),
        404,
        "not_found",
    )
    body = assert_problem(
        await client.put("/v1/quotas", json=quotas, headers=admin.headers), 422, "invalid_request"
    )
    assert body["errors"][0]["field"] == "organization_id"


async def test_an_epci_splits_only_what_it_has_and_keeps_the_operators_other_limits(
    client: AsyncClient, factory: Factory
) -> None:
    operator = await factory.operator_key()
    epci = await factory.epci()
    commune = await factory.commune(parent=epci)
    await set_quotas(client, operator, epci, [{"metric": "requests", "period": "day", "limit": 50}])
    await set_quotas(
        client,
        operator,
        commune,
        [
            {"metric": "cost_eur", "period": "month", "limit": 5},
            {"metric": "requests", "period": "day", "limit": 10},
        ],
    )
    admin = await factory.key(epci, "tenant_admin")
    url = f"/v1/quotas?organization_id={commune.id}"
    # Removing or raising the operator's cost cap is not the EPCI's to do.
    raise_cost = [{"metric": "cost_eur", "period": "month", "limit": 1_000_000}]
    body = assert_problem(
        await client.put(url, json=raise_cost, headers=admin.headers), 422, "invalid_request"
    )
    assert body["errors"][0]["field"] == "[0].period"
    assert "n'a pas de quota" in body["errors"][0]["message"]
    emptied = await client.put(url, json=[], headers=admin.headers)
    assert emptied.status_code == 200, emptied.text
    assert [(i["metric"], i["limit"]) for i in emptied.json()["items"]] == [("cost_eur", 5)]
    resplit = await client.put(
        url, json=[{"metric": "requests", "period": "day", "limit": 20}], headers=admin.headers
    )
    assert {(i["metric"], i["limit"]) for i in resplit.json()["items"]} == {
        ("cost_eur", 5),
        ("requests", 20),
    }
