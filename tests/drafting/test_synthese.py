"""Synthèses: short ones at once; long ones as jobs within a small context window, streamed
with progress, failing, stopped by a suspension or a revocation, or picked up again after
their worker died."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import anyio
import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import Request
from starlette.responses import Response

from plume.config import Settings
from plume.drafting.document import AI_NOTICE
from plume.drafting.jobs import SyntheseWorker
from plume.drafting.repository import SyntheseJobQueue
from plume.drafting.synthese import JobSettings, parts_of, split_by_tokens, surely_within
from plume.models import (
    ApiKey,
    AuditEntry,
    Draft,
    DraftStatus,
    Organization,
    OrganizationStatus,
    UsageRecord,
)
from plume.routing.tokens import count_message_tokens, count_text_tokens
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
from tests.support.clients import AppFactory, client_for
from tests.support.factories import Factory, Key
from tests.support.french import looks_french
from tests.support.problems import assert_problem
from tests.support.providers import (
    ANSWER,
    RecordingProvider,
    deployment,
    group,
    router_for,
)
from tests.support.servers import serve_in_thread


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


def part_number(body: dict[str, Any]) -> tuple[int, int]:
    """(the part's number, the parts of its round) as its prompt says."""
    numbering = re.search(r"partie (\d+) sur (\d+)", user_prompt(body))
    assert numbering is not None
    return int(numbering[1]), int(numbering[2])


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

    # The test's sessions share one connection: the lease's renewal timer (every 100 s)
    # must not fire in the middle of a progress update, on a busy machine.
    fake_app.state.synthese_worker.settings = JobSettings(lease=timedelta(hours=1))
    assert await fake_app.state.synthese_worker.run_once() is True
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
    # The first round sent every part of the source once (several at once: put back in
    # their order by their numbers); later rounds the summaries.
    numbered = [(part_number(b), b) for b in parts]
    first_round = numbered[0][0][1]
    assert first_round > 100
    firsts = sorted((n, b) for (n, total), b in numbered if total == first_round)
    assert [n for n, _ in firsts] == list(range(1, first_round + 1))
    sent = [fenced(user_prompt(b))["request"]["source_text"] for _, b in firsts]
    assert "\n\n".join(sent) == source
    later = [b for (_, total), b in numbered if total != first_round]
    assert len(later) == len(parts) - first_round
    assert all(ANSWER in fenced(user_prompt(b))["request"]["source_text"] for b in later)
    assert ANSWER in fenced(user_prompt(finals[0]))["request"]["source_text"]
    # How fast: `make bench` (tests/bench/test_synthese_wall.py), not here.


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
    assert claimed.draft_id == job_id
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


# --------------------------------------------------------------------------------------
# Turns and leases: organisations take turns; a lease is its worker's own
# --------------------------------------------------------------------------------------


async def test_two_tenants_jobs_interleave(
    fake_app: FastAPI,
    fake_client: AsyncClient,
    agent: Key,
    factory: Factory,
    db: AsyncSession,
) -> None:
    """A commune that queued three syntheses does not make another wait for all three."""
    other = await factory.key(await factory.commune("Commune voisine"))
    body = {"kind": "synthese", "source_text": french_source(9_000), "model_group": "synthese"}
    queued: dict[str, str] = {}
    for key, name in ((agent, "a"), (agent, "a"), (agent, "a"), (other, "b"), (other, "b")):
        response = await post_draft(fake_client, key, body)
        assert response.status_code == 202, response.text[:500]
        queued[response.json()["id"]] = name
    worker = fake_app.state.synthese_worker
    for _ in range(5):
        assert await worker.run_once() is True
    assert await worker.run_once() is False
    claims = (
        await db.execute(
            select(Draft.id, Draft.status, Draft.claimed_at).where(
                Draft.id.in_([uuid.UUID(i) for i in queued])
            )
        )
    ).all()
    assert {status for _, status, _ in claims} == {DraftStatus.DRAFT}
    turns = [queued[str(i)] for i, _, _ in sorted(claims, key=lambda row: row[2])]
    # Turn and turn about while both have jobs waiting, then the rest.
    assert turns[:4] in (["a", "b", "a", "b"], ["b", "a", "b", "a"]), turns
    assert sorted(turns) == ["a", "a", "a", "b", "b"]


class GatedProvider(RecordingProvider):
    """The fake provider, whose `hold_at`-th chat request waits until the test opens the
    gate (a provider call under way for as long as the test needs)."""

    def __init__(self, hold_at: int) -> None:
        super().__init__()
        self.hold_at = hold_at
        self.requests = 0
        self.gate = threading.Event()

    async def chat(self, request: Request) -> Response:
        self.requests += 1
        if self.requests == self.hold_at:
            await anyio.to_thread.run_sync(self.gate.wait)
        return await super().chat(request)


@pytest.fixture
def gated() -> Iterator[GatedProvider]:
    provider = GatedProvider(hold_at=2)
    with serve_in_thread(provider.app, provider.port):
        try:
            yield provider
        finally:
            provider.gate.set()


@pytest.fixture
def gated_app(make_app: AppFactory, settings: Settings, gated: GatedProvider) -> FastAPI:
    """Syntheses in parts, whose second provider call waits for the gate: one part at a
    time (the leases are the point here; the test's sessions share one connection, which
    parts written at once would contend for; tests/drafting/test_synthese_concurrency.py
    has the parts at once, on a database of its own)."""
    router = router_for(
        group(
            "synthese",
            deployment(
                "ok-gated",
                gated.api_base,
                provider="fake",
                context_window=SMALL_WINDOW,
                timeout_s=30,
            ),
            max_output_tokens=SMALL_OUTPUT,
            default=True,
        )
    )
    one_at_a_time = settings.model_copy(update={"synthese_concurrency": 1})
    return make_app(settings=one_at_a_time, provider_router=router)


async def _queued_job(app: FastAPI, agent: Key) -> uuid.UUID:
    async with client_for(app, timeout=60) as client:
        response = await post_draft(
            client, agent, {"kind": "synthese", "source_text": french_source(9_000)}
        )
    assert response.status_code == 202, response.text[:500]
    return uuid.UUID(response.json()["id"])


async def _until(condition: Callable[[], bool]) -> None:
    for _ in range(2000):
        if condition():
            return
        await asyncio.sleep(0.01)
    pytest.fail("waited 20 s in vain")


async def _job_records(db: AsyncSession, agent: Key) -> list[tuple[str, str | None, bool, int]]:
    rows = await db.scalars(
        select(UsageRecord)
        .where(UsageRecord.organization_id == agent.organization.id)
        .order_by(UsageRecord.created_at)
        .execution_options(populate_existing=True)
    )
    return [(r.outcome, r.error_code, r.charged, r.completion_tokens) for r in rows]


async def test_a_worker_whose_lease_was_taken_over_stops_and_settles_what_it_consumed(
    gated_app: FastAPI, gated: GatedProvider, agent: Key, db: AsyncSession
) -> None:
    job_id = await _queued_job(gated_app, agent)
    stalled = gated_app.state.synthese_worker
    other = SyntheseWorker(
        gated_app.state.session_factory,
        gated_app.state.drafting,
        gated_app.state.provider_calls,
        limits=gated_app.state.synthese_limits,
    )
    # The first worker's second provider call hangs (its process stalls) past its lease…
    first = asyncio.create_task(stalled.run_once())
    await _until(lambda: gated.requests == 2)
    await db.execute(
        update(Draft).where(Draft.id == job_id).values(locked_until=func.now() - timedelta(1))
    )
    await db.commit()
    # …so another worker takes the job over, and finishes it.
    assert await other.run_once() is True
    done = await db.scalar(
        select(Draft).where(Draft.id == job_id).execution_options(populate_existing=True)
    )
    assert done is not None
    assert done.status is DraftStatus.DRAFT
    assert done.attempts == 2
    text_, requests = done.text, gated.requests
    # The first worker's call answers at last: it finds the lease another's, and stops
    # there: no further provider call, the draft left as the other worker wrote it.
    gated.gate.set()
    assert await first is True
    assert gated.requests == requests
    await db.refresh(done)
    assert (done.status, done.text) == (DraftStatus.DRAFT, text_)
    # Both workers' consumption is settled, once each: the provider was paid twice.
    records = await _job_records(db, agent)
    assert [(o, e, c) for o, e, c, _ in records] == [
        ("success", None, True),
        ("failure", "lease_lost", True),
    ]
    assert records[1][3] > 0  # the two parts it had summarised
    entries = (
        await db.scalars(
            select(AuditEntry.body)
            .where(AuditEntry.organization_id == agent.organization.id)
            .order_by(AuditEntry.seq)
        )
    ).all()
    assert [json.loads(body)["outcome"] for body in entries] == ["accepted", "success", "failure"]


async def test_a_stopped_worker_settles_what_it_spent_and_gives_its_job_back(
    gated_app: FastAPI, gated: GatedProvider, agent: Key, db: AsyncSession
) -> None:
    job_id = await _queued_job(gated_app, agent)
    worker = gated_app.state.synthese_worker
    worker.start()
    await _until(lambda: gated.requests == 2)  # one part summarised, the next under way
    await worker.stop()  # the process is stopping (SIGTERM)
    records = await _job_records(db, agent)
    assert [(o, e, c) for o, e, c, _ in records] == [("failure", "interrupted", True)]
    assert records[0][3] > 0  # the part it had summarised
    draft = await db.scalar(
        select(Draft).where(Draft.id == job_id).execution_options(populate_existing=True)
    )
    assert draft is not None
    # Given back at once: not failed, no lease left to wait for.
    assert (draft.status, draft.locked_until, draft.lease_token) == (
        DraftStatus.PROCESSING,
        None,
        None,
    )
    gated.gate.set()
    assert await worker.run_once() is True  # another process resumes it
    await db.refresh(draft)
    assert (draft.status, draft.attempts) == (DraftStatus.DRAFT, 2)
    assert [o for o, _, _, _ in await _job_records(db, agent)] == ["failure", "success"]


def test_summaries_are_measured_by_their_size_before_being_tokenised() -> None:
    # A token is at least a byte: within the budget in bytes, nothing needs counting.
    assert surely_within("Résumé de la partie.", 100)
    assert not surely_within("é" * 60, 100)  # 120 bytes: it must be counted
    assert parts_of("é" * 60, 100) == ["é" * 60]
    long = french_source(20_000)
    assert count_text_tokens(long) > 1_000
    assert parts_of(long, 1_000) == split_by_tokens(long, 1_000)
    assert all(count_text_tokens(part) <= 1_000 for part in parts_of(long, 1_000))
