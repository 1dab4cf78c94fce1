"""What the audit tests share: a commune's entries read back, its chain verified over HTTP,
tampering done behind the application's back, and a short history to tamper with."""

from __future__ import annotations

import json
from typing import Any

from httpx import AsyncClient
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from plume.models import AuditEntry, Organization
from tests.support.factories import Factory, Key

ARTICLE = {
    "kind": "bulletin_article",
    "subject": "Fête de la Saint-Jean au bord de l'étang communal",
    "key_points": ["samedi 24 juin", "feu de joie", "buvette tenue par le comité"],
}


REVIEW = {
    "decision": "approved",
    "reviewer": {"name": "Jeanne Martel", "title": "Secrétaire de mairie"},
}


async def entries(db: AsyncSession, organization: Organization) -> list[AuditEntry]:
    rows = await db.scalars(
        select(AuditEntry)
        .where(AuditEntry.organization_id == organization.id)
        .order_by(AuditEntry.seq)
        .execution_options(populate_existing=True)
    )
    return list(rows.all())


def body(entry: AuditEntry) -> dict[str, Any]:
    fields: dict[str, Any] = json.loads(entry.body)
    return fields


async def verify(client: AsyncClient, admin: Key, **params: Any) -> dict[str, Any]:
    response = await client.get("/v1/audit/verify", params=params, headers=admin.headers)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def tamper(db: AsyncSession, statement: str, **params: Any) -> None:
    """What someone with database access could do: switch the trigger off, write, on."""
    await db.execute(text("ALTER TABLE audit_entries DISABLE TRIGGER audit_entries_append_only"))
    await db.execute(text(statement), params)
    await db.execute(text("ALTER TABLE audit_entries ENABLE TRIGGER audit_entries_append_only"))


async def some_history(client: AsyncClient, factory: Factory) -> tuple[Organization, Key]:
    """A commune whose admin drafted, reviewed, exported and minted a key: 5+ entries."""
    commune = await factory.commune("Saint-Audit-sur-Test")
    admin = await factory.key(commune, "tenant_admin")
    draft = await client.post("/v1/drafts", json=ARTICLE, headers=admin.headers)
    assert draft.status_code == 201, draft.text
    draft_id = draft.json()["id"]
    review = await client.post(f"/v1/drafts/{draft_id}/review", json=REVIEW, headers=admin.headers)
    assert review.status_code == 200, review.text
    export = await client.get(f"/v1/drafts/{draft_id}/export?format=md", headers=admin.headers)
    assert export.status_code == 200
    minted = await client.post(
        "/v1/organization/api-keys",
        json={"name": "accueil", "role": "agent"},
        headers=admin.headers,
    )
    assert minted.status_code == 201
    revoked = await client.delete(
        f"/v1/organization/api-keys/{minted.json()['id']}", headers=admin.headers
    )
    assert revoked.status_code == 204
    return commune, admin
