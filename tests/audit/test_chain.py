"""The hash chain: append-only, its verification against tampering done behind the
application's back, receipts, exports an outsider can check, and purges."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import date, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from httpx import AsyncClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from plume.audit import chain
from plume.audit.service import purge
from tests.audit.helpers import ARTICLE, body, entries, some_history, tamper, verify
from tests.support.factories import Factory

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
