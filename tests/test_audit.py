"""The audit trail: what is recorded (and what never is), the hash chain and its
verification against tampering done behind the application's back, receipts, exports an
outsider can check, purges, and who may read which chain."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from httpx import AsyncClient, Response
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from plume.app import create_app
from plume.audit import chain
from plume.audit.service import purge
from plume.audit.trail import Actor, record
from plume.db import create_engine, create_session_factory
from plume.models import AuditEntry, AuditHead, Organization
from tests.support.clients import client_for
from tests.support.factories import Factory, Key
from tests.support.processes import PLUME
from tests.support.settings import TEST_SECRET, make_settings

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
# Append-only, and tampering behind the application's back
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_entries SET action = 'draft.review' WHERE organization_id = :o",
        "DELETE FROM audit_entries WHERE organization_id = :o",
        "TRUNCATE audit_entries",
    ],
)
async def test_the_table_refuses_changes_even_to_its_owner(
    client: AsyncClient, factory: Factory, db: AsyncSession, statement: str
) -> None:
    commune, _ = await some_history(client, factory)
    with pytest.raises(Exception, match="append-only"):
        async with db.begin_nested():
            await db.execute(text(statement), {"o": commune.id})
    assert len(await entries(db, commune)) == 5


async def test_a_changed_field_is_detected_at_its_entry(
    client: AsyncClient, factory: Factory, db: AsyncSession
) -> None:
    commune, admin = await some_history(client, factory)
    assert await verify(client, admin) == {
        "organization_id": str(commune.id),
        "valid": True,
        "checked": 5,
        "first_invalid_seq": None,
        "receipt_matches": None,
    }
    third = (await entries(db, commune))[2]
    forged = third.body.replace('"format":"md"', '"format":"odt"')
    assert forged != third.body
    await tamper(
        db,
        "UPDATE audit_entries SET body = :b WHERE organization_id = :o AND seq = 3",
        b=forged,
        o=commune.id,
    )
    result = await verify(client, admin)
    assert (result["valid"], result["first_invalid_seq"], result["checked"]) == (False, 3, 2)


async def test_a_changed_filter_column_is_detected_too(
    client: AsyncClient, factory: Factory, db: AsyncSession
) -> None:
    commune, admin = await some_history(client, factory)
    await tamper(
        db,
        "UPDATE audit_entries SET actor_role = 'agent' WHERE organization_id = :o AND seq = 2",
        o=commune.id,
    )
    assert (await verify(client, admin))["first_invalid_seq"] == 2


async def test_a_deleted_entry_is_detected(
    client: AsyncClient, factory: Factory, db: AsyncSession
) -> None:
    commune, admin = await some_history(client, factory)
    await tamper(
        db, "DELETE FROM audit_entries WHERE organization_id = :o AND seq = 3", o=commune.id
    )
    result = await verify(client, admin)
    assert (result["valid"], result["first_invalid_seq"]) == (False, 3)


async def test_removing_the_latest_entries_is_detected(
    client: AsyncClient, factory: Factory, db: AsyncSession
) -> None:
    commune, admin = await some_history(client, factory)
    await tamper(
        db, "DELETE FROM audit_entries WHERE organization_id = :o AND seq >= 4", o=commune.id
    )
    result = await verify(client, admin)
    assert (result["valid"], result["first_invalid_seq"]) == (False, 4)


# --------------------------------------------------------------------------------------
# Receipts and exports an outsider checks
# --------------------------------------------------------------------------------------


def outsider_verifies(jsonl: str) -> tuple[bool, int]:
    """What a commune can run on its own: docs/audit.md's ten lines."""
    previous, count = "0" * 64, 0
    for line in jsonl.splitlines():
        entry = json.loads(line)
        text_ = f"{entry['seq']}\n{entry['prev_hash']}\n{entry['body']}"
        if (
            entry["prev_hash"] != previous
            or hashlib.sha256(text_.encode()).hexdigest() != entry["hash"]
        ):
            return False, entry["seq"]
        previous, count = entry["hash"], count + 1
    return True, count


async def test_an_export_verifies_with_an_independent_script(
    client: AsyncClient, factory: Factory, db: AsyncSession
) -> None:
    commune, admin = await some_history(client, factory)
    exported = await client.get("/v1/audit/export?format=jsonl", headers=admin.headers)
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("application/x-ndjson")
    assert outsider_verifies(exported.text) == (True, 5)
    assert json.loads(json.loads(exported.text.splitlines()[1])["body"])["action"] == "draft.review"

    as_csv = await client.get("/v1/audit/export?format=csv", headers=admin.headers)
    lines = as_csv.text.strip().splitlines()
    assert lines[0].startswith("seq,occurred_at,action,")
    assert len(lines) == 6

    await tamper(
        db,
        "UPDATE audit_entries SET body = replace(body, 'approved', 'rejected')"
        " WHERE organization_id = :o AND seq = 2",
        o=commune.id,
    )
    tampered = await client.get("/v1/audit/export?format=jsonl", headers=admin.headers)
    assert outsider_verifies(tampered.text) == (False, 2)


async def test_a_receipt_exposes_a_history_recomputed_after_it(
    client: AsyncClient, factory: Factory, db: AsyncSession
) -> None:
    commune, admin = await some_history(client, factory)
    receipt = (await client.get("/v1/audit/head", headers=admin.headers)).json()
    assert (receipt["seq"], receipt["organization_id"]) == (5, str(commune.id))
    published = (await client.get("/v1/audit/public-key")).json()
    assert published["key_id"] == receipt["key_id"]
    statement = {k: receipt[k] for k in ("organization_id", "seq", "hash", "signed_at")}
    key = Ed25519PublicKey.from_public_bytes(base64.b64decode(published["public_key"]))
    canonical = json.dumps(statement, sort_keys=True, separators=(",", ":")).encode()
    key.verify(base64.b64decode(receipt["signature"]), canonical)  # raises if forged

    # Someone with database access rewrites entry 2 and recomputes every later hash, so
    # the chain is consistent again.
    rows = await entries(db, commune)
    previous = rows[0].hash
    await db.execute(text("ALTER TABLE audit_entries DISABLE TRIGGER audit_entries_append_only"))
    for row in rows[1:]:
        new_body = row.body.replace("approved", "rejected")
        new_hash = chain.entry_hash(row.seq, previous, new_body)
        await db.execute(
            text(
                "UPDATE audit_entries SET body = :b, prev_hash = :p, hash = :h"
                " WHERE organization_id = :o AND seq = :s"
            ),
            {"b": new_body, "p": previous, "h": new_hash, "o": commune.id, "s": row.seq},
        )
        previous = new_hash
    await db.execute(text("ALTER TABLE audit_entries ENABLE TRIGGER audit_entries_append_only"))
    await db.execute(
        text("UPDATE audit_heads SET hash = :h WHERE organization_id = :o"),
        {"h": previous, "o": commune.id},
    )

    result = await verify(client, admin, receipt_seq=receipt["seq"], receipt_hash=receipt["hash"])
    assert result["valid"] is True  # consistent on its own...
    assert result["receipt_matches"] is False  # ...but not with what the server signed
    exported = await client.get("/v1/audit/export", headers=admin.headers)
    assert json.loads(exported.text.splitlines()[4])["hash"] != receipt["hash"]


# --------------------------------------------------------------------------------------
# Purge
# --------------------------------------------------------------------------------------


async def test_a_purge_leaves_a_checkpoint_and_the_rest_still_verifies(
    client: AsyncClient, factory: Factory, db: AsyncSession
) -> None:
    commune, admin = await some_history(client, factory)
    last = (await entries(db, commune))[-1]
    purged = dict(await purge(db, date.today() + timedelta(days=2)))
    assert purged[commune.id] == 5
    rows = await entries(db, commune)
    assert [(r.seq, r.action) for r in rows] == [(6, "audit.purge")]
    details = body(rows[0])["details"]
    assert (details["last_purged_seq"], details["last_purged_hash"]) == (5, last.hash)
    assert (await verify(client, admin))["valid"] is True
    for _ in range(2):
        await client.post("/v1/drafts", json=ARTICLE, headers=admin.headers)
    result = await verify(client, admin)
    assert (result["valid"], result["checked"]) == (True, 3)
    # After a purge, tampering is still caught...
    await tamper(
        db, "DELETE FROM audit_entries WHERE organization_id = :o AND seq = 7", o=commune.id
    )
    assert (await verify(client, admin))["first_invalid_seq"] == 7
    # ... and so is removing the checkpoint: nothing accounts for the missing entries.
    await tamper(
        db, "DELETE FROM audit_entries WHERE organization_id = :o AND seq = 6", o=commune.id
    )
    result = await verify(client, admin)
    assert (result["valid"], result["first_invalid_seq"]) == (False, 1)


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


# --------------------------------------------------------------------------------------
# Concurrency, on real commits
# --------------------------------------------------------------------------------------


@pytest.fixture
async def committed_client(committed_database_url: str) -> AsyncIterator[tuple[AsyncClient, Any]]:
    engine = create_engine(committed_database_url, pool_size=10)
    app = create_app(make_settings(committed_database_url), engine=engine)
    try:
        async with client_for(app) as http:
            yield http, create_session_factory(engine)
    finally:
        await engine.dispose()


async def test_fifty_concurrent_actions_leave_a_consistent_chain(
    committed_client: tuple[AsyncClient, Any],
) -> None:
    client, sessions = committed_client
    async with sessions() as session, session.begin():
        factory = Factory(session, TEST_SECRET)
        commune = await factory.commune("Commune très active")
        admin = await factory.key(commune, "tenant_admin")

    async def mint(index: int) -> Response:
        return await client.post(
            "/v1/organization/api-keys",
            json={"name": f"poste {index}", "role": "agent"},
            headers=admin.headers,
        )

    answers = await asyncio.gather(*(mint(i) for i in range(50)))
    assert [a.status_code for a in answers] == [201] * 50
    async with sessions() as session:
        rows = await entries(session, commune)
        assert [r.seq for r in rows] == list(range(1, 51))
        result = await chain.verify(session, commune.id)
    assert (result.valid, result.checked) == (True, 50)
    names = {body(r)["details"]["name"] for r in rows}
    assert names == {f"poste {i}" for i in range(50)}


# --------------------------------------------------------------------------------------
# docs/audit.md's script, and the command line, on real commits
# --------------------------------------------------------------------------------------

DOCS = Path(__file__).resolve().parents[1] / "docs" / "audit.md"


def documented_script() -> str:
    text_ = DOCS.read_text(encoding="utf-8")
    start = text_.index("```python\n", text_.index("On your own")) + len("```python\n")
    return text_[start : text_.index("```", start)]


async def run(*command: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *command,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


async def test_the_documented_script_and_the_command_line_verify_a_chain(
    committed_client: tuple[AsyncClient, Any], committed_database_url: str, tmp_path: Path
) -> None:
    client, sessions = committed_client
    async with sessions() as session, session.begin():
        factory = Factory(session, TEST_SECRET)
        commune = await factory.commune("Commune vérifiée")
        admin = await factory.key(commune, "tenant_admin")
    for index in range(3):
        response = await client.post(
            "/v1/organization/api-keys",
            json={"name": f"poste {index} — accueil", "role": "agent"},
            headers=admin.headers,
        )
        assert response.status_code == 201
    exported = await client.get("/v1/audit/export", headers=admin.headers)
    export_file = tmp_path / "audit.jsonl"
    export_file.write_bytes(exported.content)
    script = tmp_path / "verify.py"
    script.write_text(documented_script(), encoding="utf-8")

    status, out, _ = await run(sys.executable, str(script), str(export_file))
    assert status == 0, out
    assert out.startswith("valid: 3 entries")

    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PLUME_")},
        "PLUME_DATABASE_URL": committed_database_url,
        "PLUME_SECRET_KEY": TEST_SECRET,
        "PLUME_ENV": "test",
    }
    status, out, err = await run(PLUME, "audit", "verify", "--organization", commune.slug, env=env)
    assert status == 0, err
    assert out.strip() == f"{commune.slug}\tvalid\t3 entries"

    forged = exported.text.replace("poste 1", "poste 9")
    export_file.write_text(forged, encoding="utf-8")
    status, out, _ = await run(sys.executable, str(script), str(export_file))
    assert (status, "invalid at entry 2" in out + _) == (1, True)

    async with sessions() as session, session.begin():
        await tamper(
            session,
            "UPDATE audit_entries SET body = replace(body, 'poste 2', 'poste 8')"
            " WHERE organization_id = :o",
            o=commune.id,
        )
    status, out, err = await run(PLUME, "audit", "verify", "--organization", commune.slug, env=env)
    assert status == 1
    assert f"{commune.slug}\tINVALID\tfirst invalid entry: 3" in out
    assert "does not verify" in err
