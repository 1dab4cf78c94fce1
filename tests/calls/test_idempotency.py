"""Idempotency-Key on POST /v1/drafts and POST /v1/chat/completions: a retry gets the first
answer and is charged once; another body under the same key, a retry while the first
runs, failures and expiry behave as an integrator expects."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from plume.calls.context import Estimate, RequestFacts
from plume.credentials.auth import authenticate_token
from plume.models import IdempotencyKey, Organization, QuotaCounter, UsageRecord
from tests.support.chat import chat_body, sse_data
from tests.support.clients import AppFactory, client_for
from tests.support.clock import FakeClock
from tests.support.factories import Factory, Key
from tests.support.problems import assert_openai_error, assert_problem
from tests.support.providers import unreachable_router

ARTICLE = {
    "kind": "bulletin_article",
    "subject": "Collecte des encombrants",
    "key_points": ["mardi 3 décembre", "inscription en mairie"],
}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 11, 27, 9, 0, tzinfo=UTC))


@pytest.fixture
def app_overrides(clock: FakeClock) -> dict[str, Any]:
    return {"clock": clock}


def with_key(key: Key, idempotency_key: str) -> dict[str, str]:
    return {**key.headers, "Idempotency-Key": idempotency_key}


async def usage_rows(db: AsyncSession, organization: Organization) -> int:
    count = await db.scalar(
        select(func.count())
        .select_from(UsageRecord)
        .where(UsageRecord.organization_id == organization.id)
    )
    return int(count or 0)


async def test_a_retried_draft_replays_the_first_answer_and_is_charged_once(
    client: AsyncClient, factory: Factory, db: AsyncSession
) -> None:
    operator = await factory.operator_key()
    commune = await factory.commune()
    agent = await factory.key(commune)
    await client.put(
        f"/v1/admin/organizations/{commune.id}/quotas",
        json=[{"metric": "requests", "period": "day", "limit": 10}],
        headers=operator.headers,
    )
    headers = with_key(agent, "brouillon-encombrants-1")
    first = await client.post("/v1/drafts", json=ARTICLE, headers=headers)
    assert first.status_code == 201, first.text
    assert "idempotency-replayed" not in first.headers
    again = await client.post("/v1/drafts", json=ARTICLE, headers=headers)
    assert again.status_code == 201, again.text
    assert again.headers["idempotency-replayed"] == "true"
    assert again.json() == first.json()
    assert again.headers["location"] == first.headers["location"]

    assert await usage_rows(db, commune) == 1
    requests = await db.scalar(
        select(QuotaCounter.used).where(
            QuotaCounter.organization_id == commune.id, QuotaCounter.metric == "requests"
        )
    )
    assert requests == 1
    listing = await client.get("/v1/drafts", headers=agent.headers)
    assert len(listing.json()["items"]) == 1


async def test_the_same_key_with_another_body_is_422_idempotency_mismatch(
    client: AsyncClient, factory: Factory, db: AsyncSession
) -> None:
    commune = await factory.commune()
    agent = await factory.key(commune)
    headers = with_key(agent, "cle-unique")
    assert (await client.post("/v1/drafts", json=ARTICLE, headers=headers)).status_code == 201
    other = {**ARTICLE, "subject": "Fermeture de la mairie le 24 décembre"}
    body = assert_problem(
        await client.post("/v1/drafts", json=other, headers=headers), 422, "idempotency_mismatch"
    )
    assert body["errors"][0]["field"] == "Idempotency-Key"
    # ... and the same key on the chat route is another request, too.
    mismatch = await client.post("/v1/chat/completions", json=chat_body(), headers=headers)
    assert_openai_error(mismatch, 422, "idempotency_mismatch")
    assert await usage_rows(db, commune) == 1


async def test_keys_are_scoped_to_the_organisation(client: AsyncClient, factory: Factory) -> None:
    first = await factory.key(await factory.commune())
    second = await factory.key(await factory.commune())
    a = await client.post("/v1/drafts", json=ARTICLE, headers=with_key(first, "partagee"))
    b = await client.post("/v1/drafts", json=ARTICLE, headers=with_key(second, "partagee"))
    assert (a.status_code, b.status_code) == (201, 201)
    assert "idempotency-replayed" not in b.headers
    assert a.json()["id"] != b.json()["id"]


async def test_a_retry_while_the_first_still_runs_is_409_until_it_is_presumed_dead(
    client: AsyncClient, factory: Factory, db: AsyncSession, clock: FakeClock
) -> None:
    commune = await factory.commune()
    agent = await factory.key(commune)
    # The first request's claim, as it stands while its provider call is under way.
    first = await client.post("/v1/drafts", json=ARTICLE, headers=with_key(agent, "en-cours"))
    assert first.status_code == 201
    row = await db.scalar(
        select(IdempotencyKey).where(
            IdempotencyKey.organization_id == commune.id, IdempotencyKey.key == "en-cours"
        )
    )
    assert row is not None
    row.status_code = None
    row.body = None
    row.locked_until = clock.now() + timedelta(minutes=15)
    await db.flush()

    busy = await client.post("/v1/drafts", json=ARTICLE, headers=with_key(agent, "en-cours"))
    assert_problem(busy, 409, "idempotency_in_progress")
    assert busy.headers["retry-after"]
    chat = await client.post("/v1/chat/completions", json=chat_body(), headers=with_key(agent, "x"))
    assert chat.status_code == 200

    # Its process died: once the lock lapses, the retry runs it again.
    clock.current += timedelta(minutes=16)
    retried = await client.post("/v1/drafts", json=ARTICLE, headers=with_key(agent, "en-cours"))
    assert retried.status_code == 201, retried.text
    assert "idempotency-replayed" not in retried.headers


async def _claimed_by_a_request_that_died(
    app: FastAPI, agent: Key, key: str, body: bytes, estimate: Estimate
) -> None:
    """The first phase of `POST /v1/drafts` with `body` and `key` (reservation and claim,
    committed), in a process that then died: the claim is never answered nor freed."""
    request_hash = hashlib.sha256(b"POST /v1/drafts\n" + body).hexdigest()
    async with app.state.session_factory() as session:
        principal = await authenticate_token(session, app.state.settings, agent.secret)
        route = app.state.provider_router.route(None, frozenset(principal.policy.allowed_hosting))
        call = app.state.provider_calls.open(
            session,
            principal,
            RequestFacts(request_id="mort", idempotency_key=key, request_hash=request_hash),
            kind="bulletin_article",
            route=route,
            estimate=estimate,
        )
        await call.__aenter__()


async def test_a_crashed_requests_key_frees_itself_a_minute_after_the_provider_deadline(
    app: FastAPI, client: AsyncClient, factory: Factory, clock: FakeClock
) -> None:
    agent = await factory.key(await factory.commune())
    body = json.dumps(ARTICLE).encode()
    headers = {**with_key(agent, "plantage"), "Content-Type": "application/json"}
    await _claimed_by_a_request_that_died(app, agent, "plantage", body, Estimate(50, 500))
    # A single call ends by its deadline: until a minute past it, the first may still run.
    deadline = app.state.settings.provider_deadline_s
    clock.advance(seconds=deadline + 55)
    busy = await client.post("/v1/drafts", content=body, headers=headers)
    assert_problem(busy, 409, "idempotency_in_progress")
    clock.advance(seconds=10)
    retried = await client.post("/v1/drafts", content=body, headers=headers)
    assert retried.status_code == 201, retried.text
    # Well before the reservation's own expiry (15 minutes), which is the sweep's.
    assert deadline + 65 < app.state.settings.quota_reservation_ttl_s


async def test_a_synthese_in_parts_keeps_its_claim_as_long_as_a_job(
    app: FastAPI, client: AsyncClient, factory: Factory, clock: FakeClock
) -> None:
    agent = await factory.key(await factory.commune())
    body = json.dumps(ARTICLE).encode()
    headers = {**with_key(agent, "longue"), "Content-Type": "application/json"}
    await _claimed_by_a_request_that_died(app, agent, "longue", body, Estimate(50, 500, calls=9))
    clock.advance(seconds=app.state.settings.quota_job_reservation_ttl_s - 60)
    busy = await client.post("/v1/drafts", content=body, headers=headers)
    assert_problem(busy, 409, "idempotency_in_progress")


async def test_the_claim_commits_durably_and_the_reservation_alone_does_not(
    app: FastAPI, factory: Factory
) -> None:
    """A claim lost in a crash of the database would let a retry call the provider again:
    its transaction commits synchronously; without a key, the reservation's commits
    asynchronously (a lost hold is only a hold)."""
    agent = await factory.key(await factory.commune())
    committed_as: dict[str | None, str | None] = {}
    for key in (None, "durable"):
        async with app.state.session_factory() as session:
            principal = await authenticate_token(session, app.state.settings, agent.secret)
            call = app.state.provider_calls.open(
                session,
                principal,
                RequestFacts(request_id="r", idempotency_key=key, request_hash=key and "h" * 64),
                kind="chat",
                route=app.state.provider_router.route(None, frozenset({"fr"})),
                estimate=Estimate(10, 10),
            )
            await app.state.provider_calls.settlement.reserve(session, call)
            # What the commit will read.
            committed_as[key] = await session.scalar(
                text("SELECT current_setting('synchronous_commit')")
            )
            await session.rollback()
    assert committed_as == {None: "off", "durable": "on"}


async def test_keys_expire_after_24_hours(
    client: AsyncClient, factory: Factory, clock: FakeClock
) -> None:
    agent = await factory.key(await factory.commune())
    headers = with_key(agent, "hier")
    assert (await client.post("/v1/drafts", json=ARTICLE, headers=headers)).status_code == 201
    clock.current += timedelta(hours=23, minutes=59)
    replay = await client.post("/v1/drafts", json=ARTICLE, headers=headers)
    assert replay.headers.get("idempotency-replayed") == "true"
    clock.current += timedelta(minutes=2)
    other = {**ARTICLE, "subject": "Nouveau sujet, le lendemain"}
    fresh = await client.post("/v1/drafts", json=other, headers=headers)
    assert fresh.status_code == 201, fresh.text
    assert "idempotency-replayed" not in fresh.headers


async def test_a_failed_request_frees_its_key_for_a_real_retry(
    make_app: AppFactory, factory: Factory, db: AsyncSession
) -> None:
    app = make_app(provider_router=unreachable_router())
    commune = await factory.commune()
    agent = await factory.key(commune)
    async with client_for(app) as http:
        for _ in range(2):
            response = await http.post(
                "/v1/chat/completions", json=chat_body(), headers=with_key(agent, "reessai")
            )
            assert_openai_error(response, 502, "provider_unavailable")
            assert "idempotency-replayed" not in response.headers
    left = await db.scalar(
        select(func.count())
        .select_from(IdempotencyKey)
        .where(IdempotencyKey.organization_id == commune.id)
    )
    assert left == 0
    assert await usage_rows(db, commune) == 2


async def test_a_request_refused_by_quota_keeps_no_claim(
    client: AsyncClient, factory: Factory
) -> None:
    operator = await factory.operator_key()
    commune = await factory.commune()
    agent = await factory.key(commune)
    url = f"/v1/admin/organizations/{commune.id}/quotas"
    none_left = [{"metric": "tokens", "period": "day", "limit": 10}]
    await client.put(url, json=none_left, headers=operator.headers)
    refused = await client.post("/v1/drafts", json=ARTICLE, headers=with_key(agent, "plus-tard"))
    assert_problem(refused, 429, "quota_exceeded")
    await client.put(url, json=[], headers=operator.headers)
    later = await client.post("/v1/drafts", json=ARTICLE, headers=with_key(agent, "plus-tard"))
    assert later.status_code == 201, later.text


async def test_chat_completions_replay_plain_and_streamed(
    client: AsyncClient, factory: Factory, db: AsyncSession
) -> None:
    commune = await factory.commune()
    agent = await factory.key(commune)
    plain = await client.post(
        "/v1/chat/completions", json=chat_body(), headers=with_key(agent, "p")
    )
    replay = await client.post(
        "/v1/chat/completions", json=chat_body(), headers=with_key(agent, "p")
    )
    assert replay.status_code == 200
    assert replay.headers["idempotency-replayed"] == "true"
    assert replay.json() == plain.json()

    body = chat_body(stream=True)
    streamed = await client.post("/v1/chat/completions", json=body, headers=with_key(agent, "s"))
    assert streamed.status_code == 200
    again = await client.post("/v1/chat/completions", json=body, headers=with_key(agent, "s"))
    assert again.headers["idempotency-replayed"] == "true"
    assert again.headers["content-type"].startswith("text/event-stream")
    assert sse_data(again.text) == sse_data(streamed.text)
    assert sse_data(again.text)[-1] == "[DONE]"
    assert await usage_rows(db, commune) == 2


async def test_a_streamed_draft_replays_its_events(client: AsyncClient, factory: Factory) -> None:
    agent = await factory.key(await factory.commune())
    body = {**ARTICLE, "stream": True}
    first = await client.post("/v1/drafts", json=body, headers=with_key(agent, "flux"))
    again = await client.post("/v1/drafts", json=body, headers=with_key(agent, "flux"))
    assert again.headers["idempotency-replayed"] == "true"
    assert again.text == first.text
    assert "event: draft" in again.text


@pytest.mark.parametrize("value", ["", "x" * 256, "clé-accentuée"])
async def test_a_malformed_key_is_422_naming_the_header(
    client: AsyncClient, factory: Factory, value: str
) -> None:
    agent = await factory.key(await factory.commune())
    headers = [(name.encode(), v.encode()) for name, v in agent.headers.items()]
    headers.append((b"Idempotency-Key", value.encode()))
    response = await client.post("/v1/drafts", json=ARTICLE, headers=headers)
    body = assert_problem(response, 422, "invalid_request")
    assert body["errors"][0]["field"] == "Idempotency-Key"
