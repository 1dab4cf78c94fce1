"""The audit export reads its chain in short batches, each in a transaction of its own that
ends before the batch is sent: a client reading slowly holds no database connection
(tests/audit/test_slow_export.py shows it on a running server)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from plume.audit import service
from plume.audit.trail import Actor, record
from plume.db import TenantScope
from tests.audit.helpers import some_history
from tests.support.factories import Factory


class CountingSessions:
    """The application's session factory, counting the sessions open at any moment."""

    def __init__(self, factory: async_sessionmaker[AsyncSession]) -> None:
        self.factory = factory
        self.open = 0
        self.opened = 0

    @asynccontextmanager
    async def __call__(self) -> AsyncIterator[AsyncSession]:
        async with self.factory() as session:
            self.open += 1
            self.opened += 1
            try:
                yield session
            finally:
                self.open -= 1


async def test_an_export_holds_no_session_while_its_client_reads(
    app: FastAPI, client: AsyncClient, factory: Factory
) -> None:
    commune, admin = await some_history(client, factory)
    whole = await client.get("/v1/audit/export?format=jsonl", headers=admin.headers)
    sessions = CountingSessions(app.state.session_factory)
    scope = TenantScope(frozenset([commune.id]))
    chunks: list[bytes] = []
    async for chunk in service.export(sessions, scope, commune.id, "jsonl", batch=2):
        # The client now reads this chunk, as slowly as it likes: nothing is held.
        assert sessions.open == 0
        chunks.append(chunk)
    assert b"".join(chunks) == whole.content
    assert [len(chunk.splitlines()) for chunk in chunks] == [2, 2, 1]
    # The head, then one short transaction per batch.
    assert sessions.opened == 1 + 3


async def test_entries_appended_during_an_export_belong_to_the_next_one(
    app: FastAPI, client: AsyncClient, factory: Factory, db: AsyncSession
) -> None:
    commune, _ = await some_history(client, factory)
    scope = TenantScope(frozenset([commune.id]))
    export = service.export(app.state.session_factory, scope, commune.id, "jsonl", batch=2)
    chunks = [await anext(export)]
    await record(
        db,
        organization_id=commune.id,
        action="organization.update",
        actor=Actor.system(),
        details={"pendant": "l'export"},
    )
    await db.flush()
    chunks += [chunk async for chunk in export]
    seqs = [json.loads(line)["seq"] for line in b"".join(chunks).splitlines()]
    assert seqs == [1, 2, 3, 4, 5]


async def test_an_empty_chain_exports_nothing_but_its_header(
    client: AsyncClient, factory: Factory
) -> None:
    admin = await factory.key(await factory.commune(), "tenant_admin")
    jsonl = await client.get("/v1/audit/export?format=jsonl", headers=admin.headers)
    assert (jsonl.status_code, jsonl.content) == (200, b"")
    as_csv = await client.get("/v1/audit/export?format=csv", headers=admin.headers)
    assert as_csv.text.splitlines()[0].startswith("seq,occurred_at,action,")
    assert len(as_csv.text.splitlines()) == 1
