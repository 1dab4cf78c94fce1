"""The operator's organisation tree: creation rules, identifiers, status, inherited policy
and the admin list's pagination."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from httpx import AsyncClient
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from plume.models import Organization
from tests.support.factories import Factory, Key, fresh_insee, fresh_siren

ADMIN = "/v1/admin/organizations"
ALL_KINDS = {"arrete", "deliberation", "courrier", "bulletin_article", "synthese", "chat"}


@pytest.fixture
async def operator_key(factory: Factory) -> Key:
    return await factory.operator_key()


def fields_of(response: httpx.Response, status: int = 422) -> set[str]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == "invalid_request"
    return {error["field"] for error in body["errors"]}


def code_of(response: httpx.Response) -> str:
    assert response.headers["content-type"].startswith("application/problem+json"), response.text
    return str(response.json()["code"])


async def create(client: AsyncClient, key: Key, **payload: object) -> httpx.Response:
    return await client.post(ADMIN, json=payload, headers=key.headers)


async def created(client: AsyncClient, key: Key, **payload: object) -> dict[str, Any]:
    response = await create(client, key, **payload)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def patch(client: AsyncClient, key: Key, org_id: object, **payload: object) -> httpx.Response:
    return await client.patch(f"{ADMIN}/{org_id}", json=payload, headers=key.headers)


async def own_view(client: AsyncClient, key: Key) -> httpx.Response:
    return await client.get("/v1/organization", headers=key.headers)


async def count_organizations(db: AsyncSession) -> int:
    return int(await db.scalar(select(func.count()).select_from(Organization)) or 0)


# --- creation ------------------------------------------------------------------------------


async def test_operator_creates_an_epci_under_itself(
    client: AsyncClient, factory: Factory, operator_key: Key
) -> None:
    operator = await factory.operator()
    siren = fresh_siren()
    epci = await created(client, operator_key, kind="epci", name="CC des 4 Rivières", siren=siren)
    assert uuid.UUID(epci["id"])
    assert epci["kind"] == "epci"
    assert epci["name"] == "CC des 4 Rivières"
    assert epci["slug"] == siren
    assert epci["siren"] == siren
    assert epci["parent_id"] == str(operator.id)
    assert epci["status"] == "active"
    assert set(epci["policy"]["allowed_kinds"]) == ALL_KINDS
    assert set(epci["policy"]["allowed_hosting"]) == {"fr", "eu"}
    assert epci["policy"]["tribunal_administratif"] == "Rouen"

    read = await client.get(f"{ADMIN}/{epci['id']}", headers=operator_key.headers)
    assert read.status_code == 200
    assert {k: read.json()[k] for k in ("id", "kind", "slug", "parent_id", "name")} == {
        k: epci[k] for k in ("id", "kind", "slug", "parent_id", "name")
    }


async def test_commune_under_an_epci_has_its_insee_code_as_slug(
    client: AsyncClient, operator_key: Key, factory: Factory
) -> None:
    epci = await created(client, operator_key, kind="epci", name="CC", siren=fresh_siren())
    insee = fresh_insee()
    commune = await created(
        client, operator_key, kind="commune", name="La Haye", insee_code=insee, parent_id=epci["id"]
    )
    assert commune["kind"] == "commune"
    assert commune["slug"] == insee
    assert commune["insee_code"] == insee
    assert commune["parent_id"] == epci["id"]

    # Its own members see the same organisation.
    key = await factory.key(await factory.organizations.get(uuid.UUID(commune["id"])))
    own = await own_view(client, key)
    assert own.status_code == 200
    body = own.json()
    assert {k: body[k] for k in ("id", "kind", "name", "slug", "status", "parent_id")} == {
        "id": commune["id"],
        "kind": "commune",
        "name": "La Haye",
        "slug": insee,
        "status": "active",
        "parent_id": epci["id"],
    }
    assert set(body["policy"]) >= {"allowed_kinds", "allowed_hosting", "tribunal_administratif"}


async def test_commune_without_parent_belongs_to_the_operator(
    client: AsyncClient, factory: Factory, operator_key: Key
) -> None:
    operator = await factory.operator()
    commune = await created(
        client, operator_key, kind="commune", name="Isolée", insee_code=fresh_insee()
    )
    assert commune["parent_id"] == str(operator.id)


@pytest.mark.parametrize("insee", ["2A004", "2B033"])
async def test_corsican_insee_codes_are_accepted(
    client: AsyncClient, operator_key: Key, insee: str
) -> None:
    commune = await created(client, operator_key, kind="commune", name="Corse", insee_code=insee)
    assert commune["slug"] == insee
    assert commune["insee_code"] == insee


@pytest.mark.parametrize(
    "insee", ["7634", "763490", "7634A", "2C004", "2A0B4", "ABCDE", "", "76 34"]
)
async def test_bad_insee_codes_are_refused(
    client: AsyncClient, operator_key: Key, db: AsyncSession, insee: str
) -> None:
    before = await count_organizations(db)
    response = await create(client, operator_key, kind="commune", name="X", insee_code=insee)
    assert fields_of(response) == {"insee_code"}
    assert await count_organizations(db) == before


@pytest.mark.parametrize(
    "siren",
    [
        pytest.param("20006952", id="8-digits"),
        pytest.param("2000695240", id="10-digits"),
        pytest.param("200069525", id="luhn"),
        pytest.param("123456789", id="luhn-2"),
        pytest.param("20006952A", id="letter"),
        pytest.param("", id="empty"),
    ],
)
async def test_bad_sirens_are_refused(
    client: AsyncClient, operator_key: Key, db: AsyncSession, siren: str
) -> None:
    before = await count_organizations(db)
    response = await create(client, operator_key, kind="epci", name="X", siren=siren)
    assert fields_of(response) == {"siren"}
    assert await count_organizations(db) == before


async def test_a_luhn_valid_siren_is_accepted(client: AsyncClient, operator_key: Key) -> None:
    epci = await created(client, operator_key, kind="epci", name="CC4R", siren="200069524")
    assert epci["slug"] == "200069524"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        pytest.param({"kind": "commune", "name": "X"}, "insee_code", id="commune-no-insee"),
        pytest.param(
            {"kind": "commune", "name": "X", "insee_code": None, "siren": "200000016"},
            "insee_code",
            id="commune-null-insee",
        ),
        pytest.param({"kind": "epci", "name": "X"}, "siren", id="epci-no-siren"),
        pytest.param(
            {"kind": "epci", "name": "X", "siren": None, "insee_code": "76349"},
            "siren",
            id="epci-null-siren",
        ),
    ],
)
async def test_missing_identifiers_are_named(
    client: AsyncClient, operator_key: Key, db: AsyncSession, payload: dict[str, object], field: str
) -> None:
    before = await count_organizations(db)
    assert fields_of(await create(client, operator_key, **payload)) == {field}
    assert await count_organizations(db) == before


async def test_the_tree_has_three_levels(
    client: AsyncClient, operator_key: Key, db: AsyncSession
) -> None:
    epci = await created(client, operator_key, kind="epci", name="CC", siren=fresh_siren())
    commune = await created(
        client, operator_key, kind="commune", name="C", insee_code=fresh_insee()
    )
    before = await count_organizations(db)

    under_commune = await create(
        client,
        operator_key,
        kind="commune",
        name="Sous-commune",
        insee_code=fresh_insee(),
        parent_id=commune["id"],
    )
    assert fields_of(under_commune) == {"parent_id"}
    epci_under_epci = await create(
        client,
        operator_key,
        kind="epci",
        name="Sous-EPCI",
        siren=fresh_siren(),
        parent_id=epci["id"],
    )
    assert fields_of(epci_under_epci) == {"parent_id"}
    epci_under_commune = await create(
        client, operator_key, kind="epci", name="E", siren=fresh_siren(), parent_id=commune["id"]
    )
    assert fields_of(epci_under_commune) == {"parent_id"}
    unknown = await create(
        client,
        operator_key,
        kind="commune",
        name="Orpheline",
        insee_code=fresh_insee(),
        parent_id=str(uuid.uuid4()),
    )
    assert fields_of(unknown) == {"parent_id"}
    assert await count_organizations(db) == before


async def test_duplicate_identifiers_are_a_conflict(
    client: AsyncClient, operator_key: Key, db: AsyncSession
) -> None:
    insee, siren = fresh_insee(), fresh_siren()
    await created(client, operator_key, kind="commune", name="A", insee_code=insee)
    await created(client, operator_key, kind="epci", name="B", siren=siren)
    before = await count_organizations(db)

    again = await create(client, operator_key, kind="commune", name="A bis", insee_code=insee)
    assert again.status_code == 409
    assert code_of(again) == "conflict"
    again = await create(client, operator_key, kind="epci", name="B bis", siren=siren)
    assert again.status_code == 409
    assert code_of(again) == "conflict"
    assert await count_organizations(db) == before


async def test_only_the_operator_may_use_the_admin_routes(
    client: AsyncClient, factory: Factory
) -> None:
    epci = await factory.epci()
    commune = await factory.commune(parent=epci)
    for key in (
        await factory.key(epci, "tenant_admin"),
        await factory.key(commune, "tenant_admin"),
        await factory.key(commune, "agent"),
    ):
        listing = await client.get(ADMIN, headers=key.headers)
        assert (listing.status_code, code_of(listing)) == (403, "forbidden")
        read = await client.get(f"{ADMIN}/{commune.id}", headers=key.headers)
        assert (read.status_code, code_of(read)) == (403, "forbidden")
        rename = await patch(client, key, commune.id, name="Piratée")
        assert (rename.status_code, code_of(rename)) == (403, "forbidden")
        made = await create(client, key, kind="commune", name="X", insee_code=fresh_insee())
        assert (made.status_code, code_of(made)) == (403, "forbidden")
    anonymous = await client.post(ADMIN, json={"kind": "commune", "name": "X"})
    assert (anonymous.status_code, code_of(anonymous)) == (401, "unauthenticated")
    own = await own_view(client, await factory.key(commune))
    assert own.json()["name"] == "Commune de test"


async def test_unknown_organization_is_a_404(client: AsyncClient, operator_key: Key) -> None:
    response = await client.get(f"{ADMIN}/{uuid.uuid4()}", headers=operator_key.headers)
    assert (response.status_code, code_of(response)) == (404, "not_found")
    response = await patch(client, operator_key, uuid.uuid4(), name="X")
    assert (response.status_code, code_of(response)) == (404, "not_found")


# --- update: name and status ---------------------------------------------------------------


async def test_rename(client: AsyncClient, operator_key: Key, factory: Factory) -> None:
    commune = await factory.commune("Ancien nom")
    key = await factory.key(commune)
    response = await patch(client, operator_key, commune.id, name="Nouveau nom")
    assert response.status_code == 200, response.text
    assert response.json()["name"] == "Nouveau nom"
    assert response.json()["slug"] == commune.slug
    read = await client.get(f"{ADMIN}/{commune.id}", headers=operator_key.headers)
    assert read.json()["name"] == "Nouveau nom"
    assert (await own_view(client, key)).json()["name"] == "Nouveau nom"


async def test_suspending_a_commune_locks_out_its_keys(
    client: AsyncClient, operator_key: Key, factory: Factory
) -> None:
    commune = await factory.commune()
    other = await factory.commune()
    agent, admin = await factory.key(commune, "agent"), await factory.key(commune, "tenant_admin")
    other_agent = await factory.key(other)

    response = await patch(client, operator_key, commune.id, status="suspended")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "suspended"
    for key in (agent, admin):
        refused = await own_view(client, key)
        assert (refused.status_code, code_of(refused)) == (403, "organization_suspended")
    assert (await own_view(client, other_agent)).status_code == 200
    read = await client.get(f"{ADMIN}/{commune.id}", headers=operator_key.headers)
    assert read.json()["status"] == "suspended"

    response = await patch(client, operator_key, commune.id, status="active")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "active"
    for key in (agent, admin):
        own = await own_view(client, key)
        assert own.status_code == 200
        assert own.json()["status"] == "active"


async def test_suspending_an_epci_locks_out_its_communes(
    client: AsyncClient, operator_key: Key, factory: Factory
) -> None:
    epci, elsewhere = await factory.epci(), await factory.epci()
    commune = await factory.commune(parent=epci)
    epci_admin = await factory.key(epci, "tenant_admin")
    commune_agent = await factory.key(commune)
    elsewhere_agent = await factory.key(await factory.commune(parent=elsewhere))
    direct_agent = await factory.key(await factory.commune())

    assert (await patch(client, operator_key, epci.id, status="suspended")).status_code == 200
    for key in (epci_admin, commune_agent):
        refused = await own_view(client, key)
        assert (refused.status_code, code_of(refused)) == (403, "organization_suspended")
    for key in (elsewhere_agent, direct_agent):
        assert (await own_view(client, key)).status_code == 200
    # The operator still administers the suspended branch.
    read = await client.get(f"{ADMIN}/{commune.id}", headers=operator_key.headers)
    assert read.status_code == 200

    assert (await patch(client, operator_key, epci.id, status="active")).status_code == 200
    for key in (epci_admin, commune_agent):
        assert (await own_view(client, key)).status_code == 200


async def test_the_operator_cannot_be_suspended(
    client: AsyncClient, operator_key: Key, factory: Factory
) -> None:
    operator = await factory.operator()
    response = await patch(client, operator_key, operator.id, status="suspended")
    assert fields_of(response) == {"status"}
    read = await client.get(f"{ADMIN}/{operator.id}", headers=operator_key.headers)
    assert read.status_code == 200
    assert read.json()["status"] == "active"


# --- policy --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "field"),
    [
        pytest.param({"bogus": 1}, "policy.bogus", id="unknown-key"),
        pytest.param({"allowed_kinds": ["poem"]}, "policy.allowed_kinds[0]", id="unknown-kind"),
        pytest.param(
            {"allowed_kinds": ["arrete", "poem"]}, "policy.allowed_kinds[1]", id="second-kind"
        ),
        pytest.param({"allowed_kinds": "arrete"}, "policy.allowed_kinds", id="kinds-not-a-list"),
        pytest.param(
            {"allowed_hosting": ["mars"]}, "policy.allowed_hosting[0]", id="unknown-hosting"
        ),
        pytest.param(
            {"tribunal_administratif": 76}, "policy.tribunal_administratif", id="tribunal-number"
        ),
        pytest.param(
            {"tribunal_administratif": ""}, "policy.tribunal_administratif", id="tribunal-empty"
        ),
        pytest.param(["arrete"], "policy", id="not-an-object"),
    ],
)
async def test_policy_is_validated(
    client: AsyncClient, operator_key: Key, factory: Factory, policy: object, field: str
) -> None:
    commune = await factory.commune(allowed_kinds=["arrete", "courrier"])
    response = await patch(client, operator_key, commune.id, policy=policy)
    assert fields_of(response) == {field}
    read = await client.get(f"{ADMIN}/{commune.id}", headers=operator_key.headers)
    assert set(read.json()["policy"]["allowed_kinds"]) == {"arrete", "courrier"}


async def test_policy_only_narrows_down_the_tree(
    client: AsyncClient, operator_key: Key, factory: Factory
) -> None:
    epci = await factory.epci()
    commune = await factory.commune(parent=epci)
    sibling = await factory.commune(parent=epci)
    commune_key, sibling_key = await factory.key(commune), await factory.key(sibling)

    no_chat = ["arrete", "deliberation", "courrier"]
    response = await patch(client, operator_key, epci.id, policy={"allowed_kinds": no_chat})
    assert response.status_code == 200, response.text
    response = await patch(
        client,
        operator_key,
        commune.id,
        policy={"allowed_kinds": ["arrete", "chat"], "allowed_hosting": ["fr", "eu", "non_eu"]},
    )
    assert response.status_code == 200, response.text

    own = (await own_view(client, commune_key)).json()["policy"]
    assert set(own["allowed_kinds"]) == {"arrete"}
    # The operator's default hosting is France and EU: a commune cannot widen it.
    assert set(own["allowed_hosting"]) == {"fr", "eu"}
    admin = (await client.get(f"{ADMIN}/{commune.id}", headers=operator_key.headers)).json()
    assert set(admin["policy"]["allowed_kinds"]) == {"arrete"}
    assert set((await own_view(client, sibling_key)).json()["policy"]["allowed_kinds"]) == set(
        no_chat
    )


async def test_operator_policy_binds_everyone(
    client: AsyncClient, operator_key: Key, factory: Factory
) -> None:
    operator = await factory.operator()
    epci = await factory.epci(allowed_hosting=["fr", "eu"])
    commune = await factory.commune(parent=epci, allowed_hosting=["eu", "fr"])
    key = await factory.key(commune)
    response = await patch(client, operator_key, operator.id, policy={"allowed_hosting": ["fr"]})
    assert response.status_code == 200, response.text
    assert (await own_view(client, key)).json()["policy"]["allowed_hosting"] == ["fr"]


async def test_null_resets_a_key_to_inherit(
    client: AsyncClient, operator_key: Key, factory: Factory
) -> None:
    epci = await factory.epci(allowed_kinds=["arrete", "courrier", "chat"])
    commune = await factory.commune(parent=epci)
    key = await factory.key(commune)
    response = await patch(
        client,
        operator_key,
        commune.id,
        policy={"allowed_kinds": ["arrete"], "tribunal_administratif": "Caen"},
    )
    assert response.status_code == 200, response.text
    assert set((await own_view(client, key)).json()["policy"]["allowed_kinds"]) == {"arrete"}

    response = await patch(client, operator_key, commune.id, policy={"allowed_kinds": None})
    assert response.status_code == 200, response.text
    policy = (await own_view(client, key)).json()["policy"]
    assert set(policy["allowed_kinds"]) == {"arrete", "courrier", "chat"}
    # A PATCH changes the keys it names, not the others.
    assert policy["tribunal_administratif"] == "Caen"

    response = await patch(client, operator_key, commune.id, name="Renommée")
    assert response.status_code == 200, response.text
    assert (await own_view(client, key)).json()["policy"]["tribunal_administratif"] == "Caen"


async def test_tribunal_defaults_to_rouen_and_the_nearest_level_wins(
    client: AsyncClient, operator_key: Key, factory: Factory
) -> None:
    epci = await factory.epci()
    inherits, own_choice = await factory.commune(parent=epci), await factory.commune(parent=epci)
    keys = {c.id: await factory.key(c) for c in (inherits, own_choice)}

    async def tribunal(organization: Organization) -> str:
        policy = (await own_view(client, keys[organization.id])).json()["policy"]
        return str(policy["tribunal_administratif"])

    assert await tribunal(inherits) == "Rouen"
    await patch(client, operator_key, epci.id, policy={"tribunal_administratif": "Caen"})
    await patch(client, operator_key, own_choice.id, policy={"tribunal_administratif": "Amiens"})
    assert await tribunal(inherits) == "Caen"
    assert await tribunal(own_choice) == "Amiens"
    await patch(client, operator_key, epci.id, policy={"tribunal_administratif": None})
    assert await tribunal(inherits) == "Rouen"
    assert await tribunal(own_choice) == "Amiens"


# --- the list ------------------------------------------------------------------------------


async def make_tree(factory: Factory, db: AsyncSession, communes: int) -> list[str]:
    """The operator and `communes` communes, with distinct creation times; newest first."""
    operator = await factory.operator()
    made = [await factory.commune(f"Commune {i}") for i in range(communes)]
    # Everything above shares the transaction's now(): spread the creation times out.
    ordered = [operator, *made]
    for offset, organization in enumerate(ordered):
        await db.execute(
            update(Organization)
            .where(Organization.id == organization.id)
            .values(created_at=func.now() + timedelta(seconds=offset))
        )
    return [str(o.id) for o in reversed(ordered)]


async def test_list_pages_newest_first(
    client: AsyncClient, operator_key: Key, factory: Factory, db: AsyncSession
) -> None:
    expected = await make_tree(factory, db, communes=6)  # 7 organisations
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, object] = {"limit": 3}
        if cursor is not None:
            params["cursor"] = cursor
        response = await client.get(ADMIN, params=params, headers=operator_key.headers)
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {"items", "next_cursor"}
        assert 1 <= len(body["items"]) <= 3
        seen += [item["id"] for item in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
        assert pages < 5, "the cursor does not move forward"
    assert seen == expected
    assert pages == 3


async def test_last_full_page_has_no_next_cursor(
    client: AsyncClient, operator_key: Key, factory: Factory, db: AsyncSession
) -> None:
    expected = await make_tree(factory, db, communes=3)  # 4 organisations
    first = (await client.get(ADMIN, params={"limit": 2}, headers=operator_key.headers)).json()
    assert [i["id"] for i in first["items"]] == expected[:2]
    assert first["next_cursor"] is not None
    second = await client.get(
        ADMIN, params={"limit": 2, "cursor": first["next_cursor"]}, headers=operator_key.headers
    )
    assert [i["id"] for i in second.json()["items"]] == expected[2:]
    assert second.json()["next_cursor"] is None


async def test_list_default_limit_is_50(
    client: AsyncClient, operator_key: Key, factory: Factory, db: AsyncSession
) -> None:
    await make_tree(factory, db, communes=51)  # 52 organisations
    response = await client.get(ADMIN, headers=operator_key.headers)
    assert response.status_code == 200
    assert len(response.json()["items"]) == 50
    assert response.json()["next_cursor"] is not None
    response = await client.get(ADMIN, params={"limit": 200}, headers=operator_key.headers)
    assert len(response.json()["items"]) == 52
    assert response.json()["next_cursor"] is None


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 201}, "limit"),
        ({"limit": 0}, "limit"),
        ({"limit": -1}, "limit"),
        ({"cursor": "garbage"}, "cursor"),
        ({"cursor": "eyJub3QiOiAiYSBjdXJzb3IifQ"}, "cursor"),  # base64 of a JSON object
    ],
)
async def test_bad_list_parameters_are_named(
    client: AsyncClient, operator_key: Key, params: dict[str, object], field: str
) -> None:
    response = await client.get(ADMIN, params=params, headers=operator_key.headers)
    assert fields_of(response) == {field}
