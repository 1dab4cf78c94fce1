"""The audit trail: what is recorded (and what never is), and who may read which chain."""

from __future__ import annotations

import hashlib
import json
import uuid

import pytest
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession

from plume.audit import chain
from plume.audit.trail import Actor, record
from plume.models import AuditHead, Organization
from tests.audit.helpers import ARTICLE, REVIEW, body, entries, some_history
from tests.support.factories import Factory

# --------------------------------------------------------------------------------------
# What is recorded
# --------------------------------------------------------------------------------------


async def test_each_action_is_recorded_with_hashes_never_with_text_or_secrets(
    client: AsyncClient, factory: Factory, db: AsyncSession
) -> None:
    commune = await factory.commune("Saint-Audit-sur-Test")
    admin = await factory.key(commune, "tenant_admin")
    raw = json.dumps(ARTICLE).encode()
    draft = await client.post(
        "/v1/drafts",
        content=raw,
        headers={**admin.headers, "Content-Type": "application/json", "Idempotency-Key": "k-1"},
    )
    draft_id = draft.json()["id"]
    await client.post(f"/v1/drafts/{draft_id}/review", json=REVIEW, headers=admin.headers)
    await client.get(f"/v1/drafts/{draft_id}/export?format=docx", headers=admin.headers)
    minted = await client.post(
        "/v1/organization/api-keys",
        json={"name": "accueil", "role": "agent"},
        headers=admin.headers,
    )
    secret = minted.json()["key"]
    await client.delete(f"/v1/organization/api-keys/{minted.json()['id']}", headers=admin.headers)
    chat = await client.post(
        "/v1/chat/completions",
        json={"messages": [{"role": "user", "content": "Quel temps fera-t-il à la fête ?"}]},
        headers=admin.headers,
    )
    assert chat.status_code == 200

    rows = await entries(db, commune)
    assert [r.action for r in rows] == [
        "draft.create",
        "draft.review",
        "draft.export",
        "api_key.create",
        "api_key.revoke",
        "chat.completion",
    ]
    assert [r.seq for r in rows] == [1, 2, 3, 4, 5, 6]
    created = body(rows[0])
    assert created["actor"] == {"key_id": admin.id, "role": "tenant_admin"}
    assert created["target"] == {"type": "draft", "id": draft_id}
    assert created["request_id"] == draft.headers["x-request-id"]
    assert created["client_address"]
    assert created["outcome"] == "success"
    details = created["details"]
    assert details["input"] == {"sha256": hashlib.sha256(raw).hexdigest(), "bytes": len(raw)}
    text_out = draft.json()["text"].encode()
    assert details["output"] == {
        "sha256": hashlib.sha256(text_out).hexdigest(),
        "bytes": len(text_out),
    }
    assert details["provider"] == "offline"
    assert details["kind"] == "bulletin_article"
    # The client's free-text key is kept as its digest only.
    assert details["idempotency_key"] == hashlib.sha256(b"k-1").hexdigest()
    assert details["prompt_tokens"] > 0
    assert body(rows[1])["details"]["decision"] == "approved"
    assert body(rows[2])["details"]["format"] == "docx"
    assert body(rows[3])["details"]["prefix"] == minted.json()["prefix"]

    everything = " ".join(r.body for r in rows)
    for forbidden in ("Saint-Jean", "feu de joie", "Quel temps", secret, secret[4:20]):
        assert forbidden not in everything, forbidden


async def test_operator_changes_are_recorded_in_the_organisations_chain(
    client: AsyncClient, factory: Factory, db: AsyncSession
) -> None:
    operator = await factory.operator_key()
    epci = await factory.epci()
    created = await client.post(
        "/v1/admin/organizations",
        json={
            "kind": "commune",
            "name": "Nouvelle-Commune",
            "insee_code": "76999",
            "parent_id": str(epci.id),
        },
        headers=operator.headers,
    )
    if created.status_code == 409:  # the code exists already in this database
        pytest.skip("INSEE code taken")
    assert created.status_code == 201, created.text
    commune_id = uuid.UUID(created.json()["id"])
    await client.patch(
        f"/v1/admin/organizations/{commune_id}",
        json={"policy": {"allowed_kinds": ["arrete"]}},
        headers=operator.headers,
    )
    await client.put(
        f"/v1/admin/organizations/{commune_id}/quotas",
        json=[{"metric": "requests", "period": "day", "limit": 30}],
        headers=operator.headers,
    )
    commune = await db.get(Organization, commune_id)
    assert commune is not None
    rows = await entries(db, commune)
    assert [r.action for r in rows] == [
        "organization.create",
        "organization.update",
        "quota.update",
    ]
    assert all(r.actor_role == "operator_admin" for r in rows)
    assert body(rows[1])["details"]["changes"] == {"policy": {"allowed_kinds": ["arrete"]}}
    assert body(rows[2])["details"]["quotas"] == [
        {"metric": "requests", "period": "day", "limit": "30"}
    ]


async def test_a_refused_authenticated_caller_is_recorded_as_access_denied(
    client: AsyncClient, factory: Factory, db: AsyncSession
) -> None:
    mine = await factory.commune()
    other = await factory.commune()
    agent = await factory.key(mine)
    owner = await factory.key(other)
    draft = (await client.post("/v1/drafts", json=ARTICLE, headers=owner.headers)).json()

    assert (await client.get("/v1/admin/organizations", headers=agent.headers)).status_code == 403
    assert (await client.get(f"/v1/drafts/{draft['id']}", headers=agent.headers)).status_code == 404
    # An unknown key is noise for the logs, not an entry.
    assert (
        await client.get("/v1/drafts", headers={"Authorization": "Bearer plm_x"})
    ).status_code == 401

    rows = await entries(db, mine)
    assert [(r.action, body(r)["details"]["status"]) for r in rows] == [
        ("access.denied", 403),
        ("access.denied", 404),
    ]
    assert body(rows[0])["target"] == {"type": "route", "id": "GET /v1/admin/organizations"}
    assert body(rows[1])["details"]["path_params"] == {"draft_id": draft["id"]}
    # The owner's chain only has its own draft.
    assert [r.action for r in await entries(db, other)] == ["draft.create"]


async def test_a_rolled_back_action_leaves_no_entry(factory: Factory, db: AsyncSession) -> None:
    commune = await factory.commune()
    await db.flush()
    async with db.begin_nested() as savepoint:
        await record(
            db, organization_id=commune.id, action="organization.update", actor=Actor.system()
        )
        await savepoint.rollback()
    assert await entries(db, commune) == []
    assert await db.get(AuditHead, commune.id) is None
    await record(db, organization_id=commune.id, action="organization.update", actor=Actor.system())
    rows = await entries(db, commune)
    assert [(r.seq, r.prev_hash) for r in rows] == [(1, chain.GENESIS)]


# --------------------------------------------------------------------------------------
# Reading, and who may read which chain
# --------------------------------------------------------------------------------------


async def test_reading_the_trail_with_filters_and_pages(
    client: AsyncClient, factory: Factory
) -> None:
    _, admin = await some_history(client, factory)
    listing = await client.get("/v1/audit?limit=2", headers=admin.headers)
    assert listing.status_code == 200, listing.text
    page = listing.json()
    assert [i["seq"] for i in page["items"]] == [5, 4]
    following = await client.get(
        f"/v1/audit?limit=2&cursor={page['next_cursor']}", headers=admin.headers
    )
    assert [i["seq"] for i in following.json()["items"]] == [3, 2]
    reviews = await client.get("/v1/audit?action=draft.review", headers=admin.headers)
    assert [i["action"] for i in reviews.json()["items"]] == ["draft.review"]
    mine = await client.get(f"/v1/audit?actor={admin.id}", headers=admin.headers)
    assert len(mine.json()["items"]) == 5
    nobody = await client.get(f"/v1/audit?actor={uuid.uuid4()}", headers=admin.headers)
    assert nobody.json()["items"] == []
    long_ago = await client.get("/v1/audit?from=2020-01-01&to=2020-01-31", headers=admin.headers)
    assert long_ago.json()["items"] == []
    backwards = await client.get("/v1/audit?from=2026-11-20&to=2026-11-01", headers=admin.headers)
    assert backwards.status_code == 422
    assert backwards.json()["errors"][0]["field"] == "to"


async def test_a_tenant_reads_its_own_chain_and_an_epci_admin_its_communes(
    client: AsyncClient, factory: Factory
) -> None:
    epci = await factory.epci()
    commune = await factory.commune(parent=epci)
    other = await factory.commune()
    commune_admin = await factory.key(commune, "tenant_admin")
    await client.post("/v1/drafts", json=ARTICLE, headers=commune_admin.headers)
    agent = await factory.key(commune)
    epci_admin = await factory.key(epci, "tenant_admin")

    assert (await client.get("/v1/audit", headers=agent.headers)).status_code == 403
    for path in ("/v1/audit", "/v1/audit/verify", "/v1/audit/head", "/v1/audit/export"):
        refused = await client.get(
            f"{path}?organization_id={other.id}", headers=commune_admin.headers
        )
        assert refused.status_code == 404, path
        parent = await client.get(
            f"{path}?organization_id={epci.id}", headers=commune_admin.headers
        )
        assert parent.status_code == 404, path
        allowed = await client.get(
            f"{path}?organization_id={commune.id}", headers=epci_admin.headers
        )
        assert allowed.status_code == 200, path
    assert (
        await client.get("/v1/audit/verify?organization_id=all", headers=epci_admin.headers)
    ).status_code == 404

    operator = await factory.operator_key()
    everything = await client.get("/v1/audit/verify?organization_id=all", headers=operator.headers)
    assert everything.status_code == 200
    assert str(commune.id) in {c["organization_id"] for c in everything.json()["chains"]}
