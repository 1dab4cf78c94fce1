"""The operator's default quotas for new organisations: none unless configured, given per
kind to an organisation when it is created (API and command line alike), never to the
existing ones; validated, audited, and the operator's alone."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from httpx import AsyncClient, Response
from sqlalchemy.ext.asyncio import AsyncSession

from plume.models import Organization
from tests.audit.helpers import body, entries
from tests.support.factories import Factory, Key, fresh_insee, fresh_siren
from tests.support.problems import assert_problem

DEFAULTS = "/v1/admin/default-quotas"
COMMUNE_DAY = {"kind": "commune", "metric": "requests", "period": "day", "limit": 200}
COMMUNE_MONTH = {"kind": "commune", "metric": "cost_eur", "period": "month", "limit": 12.5}


async def put_defaults(client: AsyncClient, key: Key, items: list[dict[str, Any]]) -> Response:
    return await client.put(DEFAULTS, json=items, headers=key.headers)


async def create(client: AsyncClient, operator: Key, **fields: Any) -> dict[str, Any]:
    if fields["kind"] == "commune":
        fields.setdefault("insee_code", fresh_insee())
    else:
        fields.setdefault("siren", fresh_siren())
    response = await client.post(
        "/v1/admin/organizations", json={"name": "Nouvelle", **fields}, headers=operator.headers
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def quotas_of(client: AsyncClient, operator: Key, organization_id: str) -> set[tuple]:
    response = await client.get(
        f"/v1/admin/organizations/{organization_id}/quotas", headers=operator.headers
    )
    assert response.status_code == 200, response.text
    return {(i["metric"], i["period"], i["limit"]) for i in response.json()["items"]}


async def test_there_are_none_by_default_and_a_new_organisation_has_no_quota(
    client: AsyncClient, factory: Factory
) -> None:
    operator = await factory.operator_key()
    response = await client.get(DEFAULTS, headers=operator.headers)
    assert response.status_code == 200, response.text
    assert response.json() == {"items": []}
    commune = await create(client, operator, kind="commune")
    epci = await create(client, operator, kind="epci")
    assert await quotas_of(client, operator, commune["id"]) == set()
    assert await quotas_of(client, operator, epci["id"]) == set()


async def test_defaults_set_for_communes_are_given_to_a_new_commune_and_not_to_an_epci(
    client: AsyncClient, factory: Factory, db: AsyncSession
) -> None:
    operator = await factory.operator_key()
    response = await put_defaults(client, operator, [COMMUNE_DAY, COMMUNE_MONTH])
    assert response.status_code == 200, response.text
    assert response.json() == {"items": [COMMUNE_DAY, COMMUNE_MONTH]}
    assert (await client.get(DEFAULTS, headers=operator.headers)).json() == response.json()

    epci = await create(client, operator, kind="epci")
    commune = await create(client, operator, kind="commune", parent_id=epci["id"])
    assert await quotas_of(client, operator, commune["id"]) == {
        ("requests", "day", 200),
        ("cost_eur", "month", 12.5),
    }
    assert await quotas_of(client, operator, epci["id"]) == set()

    # The commune's chain says where its quotas came from.
    created = await db.get(Organization, uuid.UUID(commune["id"]))
    assert created is not None
    rows = await entries(db, created)
    assert [r.action for r in rows] == ["organization.create", "quota.update"]
    assert body(rows[1])["details"] == {
        "quotas": [
            {"metric": "requests", "period": "day", "limit": "200"},
            {"metric": "cost_eur", "period": "month", "limit": "12.5"},
        ],
        "source": "default_quotas",
    }
    # The new commune enforces them: its agent reads its own quota.
    agent = await factory.key(created)
    read = await client.get("/v1/quotas", headers=agent.headers)
    assert next((i["organization_id"], i["limit"]) for i in read.json()["items"]) == (
        commune["id"],
        200,
    )


async def test_defaults_are_never_retroactive_and_the_list_replaces_the_old_one(
    client: AsyncClient, factory: Factory
) -> None:
    operator = await factory.operator_key()
    await put_defaults(client, operator, [COMMUNE_DAY])
    before = await create(client, operator, kind="commune")
    epci_day = {"kind": "epci", "metric": "tokens", "period": "day", "limit": 1_000_000}
    response = await put_defaults(client, operator, [epci_day])
    assert response.json() == {"items": [epci_day]}
    # The commune created earlier keeps what it was given; a new commune gets nothing now.
    assert await quotas_of(client, operator, before["id"]) == {("requests", "day", 200)}
    after = await create(client, operator, kind="commune")
    assert await quotas_of(client, operator, after["id"]) == set()
    epci = await create(client, operator, kind="epci")
    assert await quotas_of(client, operator, epci["id"]) == {("tokens", "day", 1_000_000)}
    # Clearing them changes no existing organisation either.
    assert (await put_defaults(client, operator, [])).json() == {"items": []}
    assert await quotas_of(client, operator, epci["id"]) == {("tokens", "day", 1_000_000)}


async def test_changing_the_defaults_is_audited_in_the_operators_chain(
    client: AsyncClient, factory: Factory, db: AsyncSession
) -> None:
    operator = await factory.operator_key()
    await put_defaults(client, operator, [COMMUNE_DAY])
    rows = await entries(db, await factory.operator())
    last = rows[-1]
    assert last.action == "quota.defaults_updated"
    assert last.actor_role == "operator_admin"
    entry = body(last)
    assert entry["target"] == {"type": "default_quotas", "id": "all"}
    assert entry["details"] == {
        "default_quotas": [
            {"metric": "requests", "period": "day", "limit": "200", "kind": "commune"}
        ]
    }


async def test_a_tenant_admin_may_neither_read_nor_set_them(
    client: AsyncClient, factory: Factory
) -> None:
    for organization in (await factory.commune(), await factory.epci()):
        admin = await factory.key(organization, "tenant_admin")
        assert_problem(await client.get(DEFAULTS, headers=admin.headers), 403, "forbidden")
        assert_problem(await put_defaults(client, admin, [COMMUNE_DAY]), 403, "forbidden")
    operator = await factory.operator_key()
    assert (await client.get(DEFAULTS, headers=operator.headers)).json() == {"items": []}


@pytest.mark.parametrize(
    ("items", "field"),
    [
        ([{**COMMUNE_DAY, "kind": "operator"}], "[0].kind"),
        ([{**COMMUNE_DAY, "kind": "departement"}], "[0].kind"),
        ([{key: v for key, v in COMMUNE_DAY.items() if key != "kind"}], "[0].kind"),
        ([{**COMMUNE_DAY, "limit": 0}], "[0].limit"),
        ([{**COMMUNE_DAY, "limit": 2.5}], "[0].limit"),
        ([{**COMMUNE_DAY, "metric": "pages"}], "[0].metric"),
        ([{**COMMUNE_DAY, "period": "week"}], "[0].period"),
        ([{**COMMUNE_DAY, "hard": True}], "[0].hard"),
        ([COMMUNE_DAY, {**COMMUNE_DAY, "limit": 300}], "[1].period"),
        ({"items": [COMMUNE_DAY]}, "body"),
    ],
)
async def test_invalid_defaults_are_422_naming_the_field_and_change_nothing(
    client: AsyncClient, factory: Factory, items: Any, field: str
) -> None:
    operator = await factory.operator_key()
    await put_defaults(client, operator, [COMMUNE_MONTH])
    response = await client.put(DEFAULTS, json=items, headers=operator.headers)
    assert_problem(response, 422, "invalid_request", field=field)
    assert (await client.get(DEFAULTS, headers=operator.headers)).json() == {
        "items": [COMMUNE_MONTH]
    }


async def test_the_same_limit_for_two_kinds_is_two_defaults(
    client: AsyncClient, factory: Factory
) -> None:
    operator = await factory.operator_key()
    epci_day = {**COMMUNE_DAY, "kind": "epci"}
    response = await put_defaults(client, operator, [COMMUNE_DAY, epci_day])
    assert response.status_code == 200, response.text
    # EPCIs first, then communes (the tree's order).
    assert response.json() == {"items": [epci_day, COMMUNE_DAY]}
