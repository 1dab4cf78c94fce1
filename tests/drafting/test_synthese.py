"""Synthèses: short ones at once; long ones as jobs within a small context window, streamed
with progress, failing, stopped by a suspension or a revocation, or picked up again after
their worker died."""

from __future__ import annotations

import re
import time
import uuid
from datetime import timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from plume.drafting.document import AI_NOTICE
from plume.drafting.repository import SyntheseJobQueue
from plume.models import ApiKey, Draft, DraftStatus, Organization, OrganizationStatus
from plume.routing.tokens import count_message_tokens
from tests.drafting.helpers import (
    SMALL_OUTPUT,
    SMALL_WINDOW,
    ActProvider,
    created,
    fenced,
    french_source,
    post_draft,
    read,
    review,
    sse_events,
    user_prompt,
)
from tests.support.factories import Key
from tests.support.french import looks_french
from tests.support.problems import assert_problem
from tests.support.providers import (
    ANSWER,
)


async def test_a_short_synthese_answers_at_once(client: AsyncClient, agent: Key) -> None:
    source = french_source(6_000)
    draft = await created(
        client, agent, {"kind": "synthese", "source_text": source, "format": "points_cles"}
    )
    assert draft["status"] == "draft"
    assert draft["text"].strip()
    assert looks_french(draft["text"])
    assert draft["usage"]["provider"] == "offline"
    assert draft["ai_notice"] == AI_NOTICE
    assert draft["acte_nature"] is None


def part_calls(bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [b for b in bodies if "Voici la partie" in user_prompt(b)]


# Slow lane: over a hundred provider calls, several seconds by design.
@pytest.mark.slow
async def test_a_300_page_synthese_runs_as_a_job_within_a_small_context_window(
    fake_app: FastAPI, fake_client: AsyncClient, fake: ActProvider, agent: Key
) -> None:
    source = french_source(1_000_000)
    before = len(fake.bodies("ok-synthese"))
    response = await post_draft(
        fake_client,
        agent,
        {"kind": "synthese", "source_text": source, "model_group": "synthese"},
    )
    assert response.status_code == 202, response.text[:500]
    job = response.json()
    assert job["status"] == "processing"
    assert response.headers["location"] == f"/v1/drafts/{job['id']}"
    assert (await read(fake_client, agent, job["id"]))["status"] == "processing"
    # Not ready for review.
    assert_problem(await review(fake_client, agent, job["id"]), 409, "conflict")

    started = time.perf_counter()
    assert await fake_app.state.synthese_worker.run_once() is True
    elapsed = time.perf_counter() - started
    assert await fake_app.state.synthese_worker.run_once() is False  # nothing left

    done = await read(fake_client, agent, job["id"])
    assert done["status"] == "draft", done
    assert ANSWER in done["text"]
    assert done["usage"]["provider"] == "fake"
    assert done["usage"]["prompt_tokens"] > 100_000  # the whole source went through
    bodies = fake.bodies("ok-synthese")[before:]
    parts = part_calls(bodies)
    finals = [b for b in bodies if "Rédige une synthèse" in user_prompt(b)]
    assert len(parts) > 100, len(parts)
    assert len(finals) == 1
    assert bodies[-1] is finals[0]
    assert len(bodies) == len(parts) + 1
    # Every call fits the deployment's context window, answer included.
    for body in bodies:
        assert body["max_tokens"] <= SMALL_OUTPUT
        assert count_message_tokens(body["messages"]) + body["max_tokens"] <= SMALL_WINDOW
    # The first round sent every part of the source once, in order; later rounds the
    # summaries.
    numbering = re.search(r"partie 1 sur (\d+)", user_prompt(parts[0]))
    assert numbering is not None
    first_round = int(numbering[1])
    assert first_round > 100
    sent = [fenced(user_prompt(b))["request"]["source_text"] for b in parts[:first_round]]
    assert "\n\n".join(sent) == source
    assert all(
        ANSWER in fenced(user_prompt(b))["request"]["source_text"] for b in parts[first_round:]
    )
    assert ANSWER in fenced(user_prompt(finals[0]))["request"]["source_text"]
    assert elapsed < 30, f"{len(bodies)} calls took {elapsed:.1f} s"


async def test_a_streamed_long_synthese_sends_progress_then_the_draft(
    fake_client: AsyncClient, fake: ActProvider, agent: Key
) -> None:
    source = french_source(250_000, seed=11)
    before = len(fake.bodies("ok-synthese-flux"))
    response = await post_draft(
        fake_client,
        agent,
        {"kind": "synthese", "source_text": source, "model_group": "synthese-flux", "stream": True},
    )
    assert response.status_code == 200, response.text[:500]
    events = sse_events(response.text)
    names = [name for name, _ in events]
    assert names[-1] == "draft", names
    assert names.count("draft") == 1, names
    progress = [data for name, data in events if name == "progress"]
    assert set(names[:-1]) == {"progress"}, names
    assert len(progress) > 10, names
    dones = [p["done"] for p in progress]
    assert dones == sorted(dones)
    assert dones[0] == 1
    assert all(p["done"] <= p["total"] for p in progress)
    draft = events[-1][1]
    assert draft["status"] == "draft"
    assert ANSWER in draft["text"]
    assert await read(fake_client, agent, draft["id"]) == draft
    calls = fake.bodies("ok-synthese-flux")[before:]
    assert len(part_calls(calls)) == progress[-1]["done"]


async def test_a_synthese_job_whose_provider_fails_ends_failed(
    fake_app: FastAPI, fake_client: AsyncClient, agent: Key
) -> None:
    response = await post_draft(
        fake_client,
        agent,
        {
            "kind": "synthese",
            "source_text": french_source(20_000),
            "model_group": "synthese-en-panne",
        },
    )
    assert response.status_code == 202, response.text[:500]
    job_id = response.json()["id"]
    assert await fake_app.state.synthese_worker.run_once() is True
    failed = await read(fake_client, agent, job_id)
    assert failed["status"] == "failed"
    assert failed["failure_reason"]
    assert looks_french(failed["failure_reason"])
    assert_problem(await review(fake_client, agent, job_id), 409, "conflict")
    listed = await fake_client.get("/v1/drafts", headers=agent.headers, params={"status": "failed"})
    assert [item["id"] for item in listed.json()["items"]] == [job_id]


async def test_a_job_stops_when_its_organisation_is_suspended_or_its_key_revoked(
    fake_app: FastAPI,
    fake_client: AsyncClient,
    agent: Key,
    db: AsyncSession,
    fake: ActProvider,
) -> None:
    # A job acts as the key that asked: the operator cutting a tenant off stops its jobs,
    # and no provider is paid for them any more.
    for change in ("suspend", "revoke"):
        response = await post_draft(
            fake_client,
            agent,
            {"kind": "synthese", "source_text": french_source(20_000), "model_group": "synthese"},
        )
        assert response.status_code == 202, response.text[:500]
        job_id = response.json()["id"]
        if change == "suspend":
            await db.execute(
                update(Organization)
                .where(Organization.id == agent.organization.id)
                .values(status=OrganizationStatus.SUSPENDED)
            )
        else:
            await db.execute(
                update(ApiKey).where(ApiKey.id == uuid.UUID(agent.id)).values(revoked_at=func.now())
            )
        await db.commit()
        calls = len(fake.received)
        assert await fake_app.state.synthese_worker.run_once() is True
        assert len(fake.received) == calls
        status, reason = (
            await db.execute(
                select(Draft.status, Draft.failure_reason).where(Draft.id == uuid.UUID(job_id))
            )
        ).one()
        assert status is DraftStatus.FAILED
        assert looks_french(reason)
        await db.execute(
            update(Organization)
            .where(Organization.id == agent.organization.id)
            .values(status=OrganizationStatus.ACTIVE)
        )
        await db.commit()


async def test_a_job_whose_worker_died_is_picked_up_again(
    fake_app: FastAPI,
    fake_client: AsyncClient,
    agent: Key,
    db: AsyncSession,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    response = await post_draft(
        fake_client,
        agent,
        {"kind": "synthese", "source_text": french_source(20_000), "model_group": "synthese-bail"},
    )
    assert response.status_code == 202, response.text[:500]
    job_id = uuid.UUID(response.json()["id"])
    # A worker claims the job, then its process dies: the lease holds it for a while…
    async with session_factory() as session, session.begin():
        claimed = await SyntheseJobQueue(session).claim(timedelta(minutes=5))
    assert claimed is not None
    assert claimed[0] == job_id
    worker = fake_app.state.synthese_worker
    assert await worker.run_once() is False
    assert (await read(fake_client, agent, str(job_id)))["status"] == "processing"
    # …until it expires.
    await db.execute(
        update(Draft)
        .where(Draft.id == job_id)
        .values(locked_until=func.now() - timedelta(seconds=1))
    )
    await db.commit()
    assert await worker.run_once() is True
    done = await read(fake_client, agent, str(job_id))
    assert done["status"] == "draft"
    assert ANSWER in done["text"]
    attempts = await db.scalar(select(Draft.attempts).where(Draft.id == job_id))
    assert attempts == 2
    assert await worker.run_once() is False
