"""Erasing a draft (DELETE /v1/drafts/{id}) and the retention purge: the commune's words are
gone from every table, the record stays, and both are audited without a text."""

from __future__ import annotations

import concurrent.futures
import contextlib
import hashlib
import io
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from plume import cli
from plume.config import Settings
from plume.db import create_engine
from plume.drafting.retention import purge
from tests.support.factories import Factory, Key
from tests.support.problems import assert_problem
from tests.support.settings import TEST_SECRET, make_settings

# A resident's name nobody else would write: searched for in the whole database.
PLANTED = "Zéphyrine Quastrelle-Vauboin"


def request_with(planted: str) -> dict[str, Any]:
    return {
        "kind": "courrier",
        "subject": "Réponse à une demande de logement d'urgence",
        "recipient": {"name": f"Mme {planted}", "address": "4 rue des Lilas"},
        "points": [f"Accuser réception de la demande de Mme {planted} du 3 janvier 2027."],
    }


async def create(client: AsyncClient, key: Key, planted: str = PLANTED, **headers: str) -> str:
    response = await client.post(
        "/v1/drafts", headers={**key.headers, **headers}, json=request_with(planted)
    )
    assert response.status_code == 201, response.text
    assert planted in response.text
    return str(response.json()["id"])


async def tables_holding(db: AsyncSession, planted: str) -> list[str]:
    """Every column of every table of the database that holds `planted`, as table.column."""
    columns = await db.execute(
        text(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'public' "
            "AND data_type IN ('text', 'character varying', 'jsonb', 'json', 'bytea')"
        )
    )
    found = []
    for table, column, data_type in columns.all():
        if data_type == "bytea":
            condition = f"position(convert_to(:planted, 'UTF8') IN \"{column}\") > 0"
        else:
            condition = f'"{column}"::text LIKE :pattern'
        hit = await db.execute(
            text(f'SELECT count(*) FROM "{table}" WHERE {condition}'),  # noqa: S608
            {"planted": planted, "pattern": f"%{planted}%"},
        )
        if hit.scalar_one():
            found.append(f"{table}.{column}")
    return found


async def test_an_erased_draft_leaves_no_word_of_it_anywhere_and_keeps_its_record(
    client: AsyncClient, agent: Key, db: AsyncSession
) -> None:
    draft_id = await create(client, agent, **{"Idempotency-Key": "erase-me-1"})
    before = (await client.get(f"/v1/drafts/{draft_id}", headers=agent.headers)).json()
    # The draft and the idempotent replay both hold the name.
    assert set(await tables_holding(db, PLANTED)) >= {"drafts.request", "drafts.text"}
    assert "idempotency_keys.body" in await tables_holding(db, PLANTED)

    response = await client.delete(f"/v1/drafts/{draft_id}", headers=agent.headers)
    assert response.status_code == 204, response.text

    assert await tables_holding(db, PLANTED) == []
    after = (await client.get(f"/v1/drafts/{draft_id}", headers=agent.headers)).json()
    assert after["status"] == "erased"
    assert after["text"] == ""
    assert after["title"] is None
    assert after["warnings"] == []
    assert after["sections"] is None
    # The record stays: id, kind, dates, usage.
    assert after["id"] == draft_id
    assert after["kind"] == "courrier"
    assert after["created_at"] == before["created_at"]
    assert after["usage"] == before["usage"]
    stored = (
        await db.execute(
            text("SELECT text_digest, erased_at, request FROM drafts WHERE id = :id"),
            {"id": draft_id},
        )
    ).one()
    assert stored.text_digest == hashlib.sha256(before["text"].encode()).hexdigest()
    assert stored.erased_at is not None
    assert stored.request == {}
    # A retry with the same Idempotency-Key does not bring the text back.
    retry = await client.post(
        "/v1/drafts",
        headers={**agent.headers, "Idempotency-Key": "erase-me-1"},
        json=request_with(PLANTED),
    )
    assert retry.status_code == 201
    assert retry.json()["id"] != draft_id  # a new draft: the old answer is not replayed


async def test_erasure_is_audited_with_a_digest_never_the_text(
    client: AsyncClient, agent: Key, factory: Factory
) -> None:
    draft_id = await create(client, agent)
    assert (await client.delete(f"/v1/drafts/{draft_id}", headers=agent.headers)).status_code == 204
    admin = await factory.key(agent.organization, "tenant_admin")
    entries = (await client.get("/v1/audit?action=draft.erase", headers=admin.headers)).json()
    [entry] = [e for e in entries["items"] if e["target"]["id"] == draft_id]
    assert entry["details"]["text"]["sha256"]
    assert PLANTED not in str(entry)
    verified = await client.get("/v1/audit/verify", headers=admin.headers)
    assert verified.json()["valid"] is True


async def test_only_the_author_or_an_administrator_erases(
    client: AsyncClient, agent: Key, factory: Factory
) -> None:
    draft_id = await create(client, agent)
    colleague = await factory.key(agent.organization, "agent")
    refused = await client.delete(f"/v1/drafts/{draft_id}", headers=colleague.headers)
    assert_problem(refused, 403, "forbidden")
    assert "auteur" in refused.json()["detail"]

    elsewhere = await factory.key(await factory.commune("Autre-Commune"), "tenant_admin")
    hidden = await client.delete(f"/v1/drafts/{draft_id}", headers=elsewhere.headers)
    assert_problem(hidden, 404, "not_found")

    admin = await factory.key(agent.organization, "tenant_admin")
    assert (await client.delete(f"/v1/drafts/{draft_id}", headers=admin.headers)).status_code == 204
    again = await client.delete(f"/v1/drafts/{draft_id}", headers=admin.headers)
    assert_problem(again, 409, "conflict")


async def test_an_erased_draft_can_be_neither_exported_nor_reviewed(
    client: AsyncClient, agent: Key
) -> None:
    draft_id = await create(client, agent)
    assert (await client.delete(f"/v1/drafts/{draft_id}", headers=agent.headers)).status_code == 204
    exported = await client.get(f"/v1/drafts/{draft_id}/export?format=docx", headers=agent.headers)
    assert_problem(exported, 409, "conflict")
    reviewed = await client.post(
        f"/v1/drafts/{draft_id}/review",
        headers=agent.headers,
        json={"decision": "approved", "reviewer": {"name": "Jean Dupont", "title": "Maire"}},
    )
    assert_problem(reviewed, 409, "conflict")
    listed = await client.get("/v1/drafts?status=erased", headers=agent.headers)
    assert [d["id"] for d in listed.json()["items"]] == [draft_id]


async def _age(db: AsyncSession, draft_id: str, days: int) -> None:
    await db.execute(
        text(
            "UPDATE drafts SET created_at = created_at - make_interval(days => :days) "
            "WHERE id = :id"
        ),
        {"days": days, "id": draft_id},
    )
    await db.flush()


async def test_retention_erases_what_is_past_the_organisations_retention(
    client: AsyncClient,
    factory: Factory,
    db: AsyncSession,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    # The commune keeps its drafts 30 days (the operator's default is 365: it may shorten).
    commune = await factory.commune("Rétention-sur-Mer", retention_days=30)
    key = await factory.key(commune, "agent")
    old = await create(client, key, "Ysolde Brimbelune")
    recent = await create(client, key, "Aristide Pommerelle")
    approved = await create(client, key, "Honorine Caboufigue")
    review = await client.post(
        f"/v1/drafts/{approved}/review",
        headers=key.headers,
        json={"decision": "approved", "reviewer": {"name": "Jean Dupont", "title": "Maire"}},
    )
    assert review.status_code == 200
    await _age(db, old, 31)
    await _age(db, approved, 40)
    await _age(db, recent, 29)

    purged = await purge(session_factory, datetime.now(UTC))
    assert [
        (p.slug, p.erased, p.retention_days) for p in purged if p.organization_id == commune.id
    ] == [(commune.slug, 2, 30)]
    assert await tables_holding(db, "Ysolde Brimbelune") == []
    # Approved or not: the signed act is the commune's to archive.
    assert await tables_holding(db, "Honorine Caboufigue") == []
    assert await tables_holding(db, "Aristide Pommerelle") != []
    statuses = dict(
        (
            await db.execute(
                text("SELECT id::text, status::text FROM drafts WHERE organization_id = :o"),
                {"o": commune.id},
            )
        ).all()
    )
    assert statuses == {old: "erased", approved: "erased", recent: "draft"}
    # The review stays on the record.
    after = (await client.get(f"/v1/drafts/{approved}", headers=key.headers)).json()
    assert after["review"]["decision"] == "approved"

    admin = await factory.key(commune, "tenant_admin")
    [entry] = (await client.get("/v1/audit?action=retention.purge", headers=admin.headers)).json()[
        "items"
    ]
    assert entry["details"]["erased"] == 2
    assert entry["details"]["retention_days"] == 30
    assert entry["actor"]["role"] == "system"
    # A second run finds nothing and records nothing.
    assert not [p for p in await purge(session_factory) if p.organization_id == commune.id]


async def test_a_commune_cannot_keep_longer_than_the_operator_allows(
    client: AsyncClient, factory: Factory, db: AsyncSession
) -> None:
    commune = await factory.commune("Longue-Mémoire", retention_days=3000)
    key = await factory.key(commune, "agent")
    organization = (await client.get("/v1/organization", headers=key.headers)).json()
    assert organization["policy"]["retention_days"] == 365


async def test_retention_days_is_validated(client: AsyncClient, factory: Factory) -> None:
    operator = await factory.key(await factory.operator(), "operator_admin")
    commune = await factory.commune("Validée")
    for bad in (0, -1, "30", True, 4000):
        response = await client.patch(
            f"/v1/admin/organizations/{commune.id}",
            headers=operator.headers,
            json={"policy": {"retention_days": bad}},
        )
        assert_problem(response, 422, "invalid_request")
        assert "retention_days" in response.text


def _cli(settings: Settings, *argv: str) -> str:
    """`plume <argv>` in-process, in a thread of its own (it runs its own event loop)."""

    def run() -> str:
        args = cli.build_parser().parse_args(list(argv))
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            args.handler(settings, args)
        return out.getvalue()

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as thread:
        return thread.submit(run).result()


async def test_plume_retention_run_erases_as_of_the_moment_given(
    committed_database_url: str,
) -> None:
    engine = create_engine(committed_database_url, pool_size=1)
    try:
        async with AsyncSession(engine, expire_on_commit=False) as session, session.begin():
            commune = await Factory(session, TEST_SECRET).commune(
                f"Commune-{uuid.uuid4().hex[:8]}", retention_days=10
            )
            draft_id = uuid.uuid4()
            await session.execute(
                text(
                    "INSERT INTO drafts (id, organization_id, kind, status, request, text, "
                    "warnings, ai_notice) VALUES (:id, :o, 'courrier', 'draft', "
                    "CAST(:request AS jsonb), :text, CAST('[]' AS jsonb), 'IA')"
                ),
                {
                    "id": draft_id,
                    "o": commune.id,
                    "request": '{"subject": "Ysaline Froidmantel"}',
                    "text": "Madame Ysaline Froidmantel,",
                },
            )
        settings = make_settings(committed_database_url)
        # Nine days on, nothing is due; eleven days on, the draft is.
        soon = (datetime.now(UTC) + timedelta(days=9)).isoformat()
        assert commune.slug not in _cli(settings, "retention", "run", "--at", soon)
        later = (datetime.now(UTC) + timedelta(days=11)).isoformat()
        out = _cli(settings, "retention", "run", "--at", later)
        assert f"{commune.slug}\t1 drafts erased" in out, out
        async with AsyncSession(engine) as session:
            row = (
                await session.execute(
                    text("SELECT status::text, text, request::text FROM drafts WHERE id = :id"),
                    {"id": draft_id},
                )
            ).one()
        assert tuple(row) == ("erased", "", "{}")
        with pytest.raises(cli.CommandError, match="--at"):
            _cli(settings, "retention", "run", "--at", "hier")
    finally:
        await engine.dispose()


async def test_a_synthese_being_written_is_not_erased(
    client: AsyncClient, agent: Key, db: AsyncSession
) -> None:
    draft_id = await create(client, agent)
    await db.execute(
        text("UPDATE drafts SET status = 'processing' WHERE id = :id"), {"id": uuid.UUID(draft_id)}
    )
    await db.flush()
    refused = await client.delete(f"/v1/drafts/{draft_id}", headers=agent.headers)
    assert_problem(refused, 409, "conflict")
    assert "en cours" in refused.json()["detail"]
