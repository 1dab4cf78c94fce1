"""What the operators' dashboards and alerts read besides requests: organisations' names
(plume_organization_info), the synthèse queue, and audit chains found broken."""

from __future__ import annotations

import uuid
from datetime import timedelta

from httpx import AsyncClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from plume.db import system_sessions
from plume.drafting.repository import SyntheseJobQueue
from tests.audit.helpers import entries, some_history, tamper, verify
from tests.drafting.helpers import SMALL_OUTPUT, SMALL_WINDOW, french_source
from tests.metrics.helpers import samples, value
from tests.support.clients import AppFactory, client_for
from tests.support.factories import Factory, fresh_insee
from tests.support.providers import RecordingProvider, deployment, group, router_for


def _info(text: str, slug: str) -> list[dict[str, str]]:
    """The labels of the organisation's plume_organization_info series (value 1)."""
    return [
        dict(labels)
        for (name, labels), shown in samples(text).items()
        if name == "plume_organization_info" and ("organization", slug) in labels and shown == 1
    ]


async def test_organisations_are_shown_by_name_and_follow_the_operators_changes(
    make_app: AppFactory, factory: Factory
) -> None:
    epci = await factory.epci("Communauté de communes du Test")
    operator = await factory.operator_key()
    app = make_app()
    async with client_for(app) as client:
        await app.state.organization_info.refresh()  # as when the process starts
        shown = (await client.get("/metrics")).text
        assert _info(shown, epci.slug) == [
            {
                "organization": epci.slug,
                "name": "Communauté de communes du Test",
                "kind": "epci",
                "parent": "operator",
            }
        ]
        assert _info(shown, "operator")[0]["parent"] == ""

        # Created through the API: shown at once, under its EPCI.
        insee = fresh_insee()
        created = await client.post(
            "/v1/admin/organizations",
            json={
                "kind": "commune",
                "name": "Saint-Nouveau",
                "insee_code": insee,
                "parent_id": str(epci.id),
            },
            headers=operator.headers,
        )
        assert created.status_code == 201, created.text
        commune_id = created.json()["id"]
        after_creation = (await client.get("/metrics")).text
        assert _info(after_creation, insee) == [
            {"organization": insee, "name": "Saint-Nouveau", "kind": "commune", "parent": epci.slug}
        ]

        # Renamed: one series, under the new name; suspended: still named.
        for change in ({"name": "Saint-Nouveau-sur-Mer"}, {"status": "suspended"}):
            patched = await client.patch(
                f"/v1/admin/organizations/{commune_id}", json=change, headers=operator.headers
            )
            assert patched.status_code == 200, patched.text
            shown = (await client.get("/metrics")).text
            assert [labels["name"] for labels in _info(shown, insee)] == ["Saint-Nouveau-sur-Mer"]
            assert 'Saint-Nouveau"' not in shown


async def test_the_synthese_backlog_shows_jobs_waiting_and_running(
    make_app: AppFactory,
    fake: RecordingProvider,
    factory: Factory,
    db: AsyncSession,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    agent = await factory.key(await factory.commune())
    router = router_for(
        group(
            "synthese",
            deployment("ok-jobs", fake.api_base, context_window=SMALL_WINDOW, timeout_s=30),
            max_output_tokens=SMALL_OUTPUT,
            default=True,
        )
    )
    app = make_app(provider_router=router)
    backlog = app.state.synthese_backlog
    async with client_for(app, timeout=60) as client:
        await backlog.refresh()
        empty = (await client.get("/metrics")).text
        assert value(empty, "plume_synthese_jobs", state="queued") == 0
        assert value(empty, "plume_synthese_oldest_queued_seconds") == 0

        body = {"kind": "synthese", "source_text": french_source(9_000)}
        response = await client.post("/v1/drafts", json=body, headers=agent.headers)
        assert response.status_code == 202, response.text[:500]
        # Queued ten minutes ago, and no worker runs here.
        await db.execute(
            text("UPDATE drafts SET created_at = created_at - interval '10 minutes' WHERE id = :i"),
            {"i": uuid.UUID(response.json()["id"])},
        )
        await backlog.refresh()
        waiting = (await client.get("/metrics")).text
        assert value(waiting, "plume_synthese_jobs", state="queued") == 1
        assert value(waiting, "plume_synthese_jobs", state="running") == 0
        assert value(waiting, "plume_synthese_oldest_queued_seconds") >= 600

        # A worker takes it.
        async with system_sessions(session_factory)() as session, session.begin():
            assert await SyntheseJobQueue(session).claim(timedelta(minutes=5)) is not None
        await backlog.refresh()
        running = (await client.get("/metrics")).text
        assert value(running, "plume_synthese_jobs", state="queued") == 0
        assert value(running, "plume_synthese_jobs", state="running") == 1
        assert value(running, "plume_synthese_oldest_queued_seconds") == 0


async def test_a_broken_chain_found_by_a_verification_is_counted(
    client: AsyncClient, factory: Factory, db: AsyncSession
) -> None:
    commune, admin = await some_history(client, factory)
    failures = {"organization": commune.slug}
    name = "plume_audit_verification_failures_total"
    before = value((await client.get("/metrics")).text, name, **failures)
    assert (await verify(client, admin))["valid"] is True
    assert value((await client.get("/metrics")).text, name, **failures) == before

    third = (await entries(db, commune))[2]
    await tamper(
        db,
        "UPDATE audit_entries SET body = :b WHERE organization_id = :o AND seq = 3",
        b=third.body.replace('"format":"md"', '"format":"odt"'),
        o=commune.id,
    )
    assert (await verify(client, admin))["valid"] is False
    operator = await factory.operator_key()
    everything = await verify(client, operator, organization_id="all")
    assert everything["valid"] is False
    assert value((await client.get("/metrics")).text, name, **failures) == before + 2
