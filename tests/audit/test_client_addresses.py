"""The audit trail keeps a caller's full IP address for a while, apart from the hashed entry
(which holds only its network), then forgets it without breaking the chain."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from plume.audit.trail import client_network
from plume.drafting.retention import purge
from tests.support.factories import Factory

COURRIER = {
    "kind": "courrier",
    "subject": "Invitation à la réunion publique",
    "recipient": {"name": "Madame, Monsieur"},
    "points": ["Inviter les habitants à la réunion du 12 mars 2027."],
}


@pytest.fixture
async def from_afar(app: FastAPI) -> AsyncIterator[AsyncClient]:
    """A client calling from 203.0.113.77 (a documentation address)."""
    transport = ASGITransport(app=app, client=("203.0.113.77", 51000))
    async with AsyncClient(transport=transport, base_url="http://plume.test") as http:
        yield http


def test_an_address_is_cut_to_its_network() -> None:
    assert client_network("203.0.113.77") == "203.0.113.0/24"
    assert client_network("2001:db8:1234:5678::1") == "2001:db8:1234::/48"
    assert client_network("testclient") is None
    assert client_network(None) is None


async def test_the_full_address_is_kept_apart_then_forgotten_and_the_chain_holds(
    from_afar: AsyncClient,
    factory: Factory,
    db: AsyncSession,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    commune = await factory.commune("Adresse-sur-Mer")
    agent = await factory.key(commune, "agent")
    admin = await factory.key(commune, "tenant_admin")
    created = await from_afar.post("/v1/drafts", headers=agent.headers, json=COURRIER)
    assert created.status_code == 201, created.text
    draft_id = created.json()["id"]
    # An entry written by an endpoint (not the provider call's settlement) too.
    deleted = await from_afar.delete(f"/v1/drafts/{draft_id}", headers=agent.headers)
    assert deleted.status_code == 204

    bodies = (
        await db.execute(
            text("SELECT body FROM audit_entries WHERE organization_id = :o"), {"o": commune.id}
        )
    ).scalars()
    hashed = [json.loads(body)["client_address"] for body in bodies]
    assert hashed == ["203.0.113.0/24", "203.0.113.0/24"]

    listed = (await from_afar.get("/v1/audit", headers=admin.headers)).json()["items"]
    assert {e["action"]: e["client_address"] for e in listed} == {
        "draft.create": "203.0.113.77",
        "draft.erase": "203.0.113.77",
    }

    # Thirty days on (the default), the daily purge forgets the full addresses.
    await purge(session_factory, datetime.now(UTC) + timedelta(days=31))
    listed = (await from_afar.get("/v1/audit", headers=admin.headers)).json()["items"]
    assert {e["client_address"] for e in listed} == {"203.0.113.0/24"}
    kept = await db.execute(
        text("SELECT count(*) FROM audit_client_addresses WHERE organization_id = :o"),
        {"o": commune.id},
    )
    assert kept.scalar_one() == 0
    verified = await from_afar.get("/v1/audit/verify", headers=admin.headers)
    assert verified.json()["valid"] is True


async def test_a_recent_address_survives_the_purge(
    from_afar: AsyncClient,
    factory: Factory,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    commune = await factory.commune("Adresse-Récente")
    agent = await factory.key(commune, "agent")
    admin = await factory.key(commune, "tenant_admin")
    assert (await from_afar.post("/v1/drafts", headers=agent.headers, json=COURRIER)).is_success
    await purge(session_factory, datetime.now(UTC) + timedelta(days=29))
    [entry] = (await from_afar.get("/v1/audit", headers=admin.headers)).json()["items"]
    assert entry["client_address"] == "203.0.113.77"
