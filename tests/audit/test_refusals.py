"""Refusals are audited without letting one tenant fill its chain: one `access.denied` entry
a minute for each kind of refusal (organisation, code, route), the others counted in the
next entry of their kind, every one of them counted in plume_refusals_total."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from tests.audit.helpers import body, entries, verify
from tests.metrics.helpers import value
from tests.support.clients import AppFactory, client_for
from tests.support.clock import FakeClock
from tests.support.factories import Factory

NOT_FOUND = {"status": "404", "code": "not_found"}
FORBIDDEN = {"status": "403", "code": "forbidden"}


def _accounted(rows: list[dict[str, object]], code: str) -> int:
    """The refusals of one code the entries stand for: each one, plus those it carries."""
    return sum(
        1 + int(row["details"].get("suppressed", 0))  # type: ignore[union-attr]
        for row in rows
        if row["details"]["code"] == code  # type: ignore[index]
    )


async def test_a_flood_of_refusals_adds_a_bounded_number_of_entries_and_is_counted_whole(
    make_app: AppFactory, factory: Factory, db: AsyncSession, clock: FakeClock
) -> None:
    commune = await factory.commune()
    agent = await factory.key(commune, "tenant_admin")
    neighbour = await factory.commune()
    other = await factory.key(neighbour)
    app = make_app(clock=clock)
    async with client_for(app) as client:
        before = (await client.get("/metrics")).text
        last_missing = ""
        for index in range(200):
            if index % 2:
                last_missing = str(uuid.uuid4())
                response = await client.get(f"/v1/drafts/{last_missing}", headers=agent.headers)
                assert response.status_code == 404
            else:
                response = await client.get("/v1/admin/organizations", headers=agent.headers)
                assert response.status_code == 403
            if index == 100:
                # Another tenant refused meanwhile has its own entry.
                refused = await client.get(f"/v1/drafts/{uuid.uuid4()}", headers=other.headers)
                assert refused.status_code == 404
        after = (await client.get("/metrics")).text

        # The metric counts every refusal.
        slug = commune.slug
        added = [
            value(after, "plume_refusals_total", organization=slug, **labels)
            - value(before, "plume_refusals_total", organization=slug, **labels)
            for labels in (NOT_FOUND, FORBIDDEN)
        ]
        assert added == [100, 100]
        # The chain got one entry per kind of refusal.
        rows = [body(row) for row in await entries(db, commune)]
        assert [(row["action"], row["target"]["id"]) for row in rows] == [
            ("access.denied", "GET /v1/admin/organizations"),
            ("access.denied", "GET /v1/drafts/{draft_id}"),
        ]
        assert all("suppressed" not in row["details"] for row in rows)
        assert [body(row)["action"] for row in await entries(db, neighbour)] == ["access.denied"]

        # Once the minute is over, the timer writes the last refusal of each kind, carrying
        # the others: every refusal is accounted for.
        clock.advance(seconds=61)
        await app.state.refusals.flush()
        rows = [body(row) for row in await entries(db, commune)]
        assert len(rows) == 4
        assert _accounted(rows, "not_found") == 100
        assert _accounted(rows, "forbidden") == 100
        last = next(row for row in rows[2:] if row["details"]["code"] == "not_found")
        assert last["details"]["suppressed"] == 98
        assert last["details"]["path_params"] == {"draft_id": last_missing}
        # Nothing is left to write, and the chain verifies.
        await app.state.refusals.flush()
        assert len(await entries(db, commune)) == 4
        assert (await verify(client, agent))["valid"] is True


async def test_the_next_refusal_after_the_minute_carries_the_count(
    make_app: AppFactory, factory: Factory, db: AsyncSession, clock: FakeClock
) -> None:
    commune = await factory.commune()
    agent = await factory.key(commune)
    app = make_app(clock=clock)
    async with client_for(app) as client:
        for _ in range(5):
            await client.get(f"/v1/drafts/{uuid.uuid4()}", headers=agent.headers)
        clock.advance(seconds=30)
        await app.state.refusals.flush()  # the minute is not over: nothing written yet
        assert len(await entries(db, commune)) == 1
        clock.advance(seconds=31)
        await client.get(f"/v1/drafts/{uuid.uuid4()}", headers=agent.headers)
        await app.state.refusals.flush()

    rows = [body(row) for row in await entries(db, commune)]
    assert [row["details"].get("suppressed") for row in rows] == [None, 4]


async def test_refusals_held_when_the_process_stops_are_written(
    make_app: AppFactory, factory: Factory, db: AsyncSession, clock: FakeClock
) -> None:
    commune = await factory.commune()
    agent = await factory.key(commune)
    app = make_app(clock=clock)
    async with client_for(app) as client:
        for _ in range(3):
            await client.get("/v1/admin/organizations", headers=agent.headers)
    await app.state.refusals.stop()
    rows = [body(row) for row in await entries(db, commune)]
    assert [row["details"].get("suppressed") for row in rows] == [None, 1]
