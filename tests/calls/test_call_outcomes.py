"""The provider call's unit of work settles every way a request can end exactly once, as
docs/architecture.md's table says: one usage record, one audit entry, and the quota ledger
moved by what was charged — nothing left held, nothing charged twice.

Each test drives a call of a commune with quotas through `app.state.provider_calls`, as a
route does (reserve on entering the block, the provider, the end), on the test's
transaction; the routes' own tests cover the same paths through HTTP."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from plume.calls.context import Estimate, RequestFacts, StoredResponse
from plume.calls.unit import ProviderCall, SettledElsewhere
from plume.credentials.auth import authenticate_token
from plume.errors import ProviderUnavailable
from plume.models import (
    AuditEntry,
    IdempotencyKey,
    Organization,
    QuotaCounter,
    QuotaReservation,
    UsageRecord,
)
from plume.routing.router import ProviderRouter
from tests.support.clients import AppFactory, client_for
from tests.support.factories import Factory
from tests.support.providers import (
    RecordingProvider,
    deployment,
    group,
    router_for,
    unreachable_router,
)

MESSAGES = [{"role": "user", "content": "Rédige une phrase sur le marché du jeudi."}]
ESTIMATE = Estimate(prompt_tokens=40, output_tokens=200)


@dataclass
class Commune:
    organization: Organization
    app: FastAPI
    secret: str

    @asynccontextmanager
    async def call(
        self, kind: str = "chat", estimate: Estimate = ESTIMATE
    ) -> AsyncIterator[ProviderCall]:
        """A call as a route opens it: in the request's first session, which authenticated
        the caller, reserved as the block is entered, settled when it ends."""
        app = self.app
        async with app.state.session_factory() as session:
            principal = await authenticate_token(session, app.state.settings, self.secret)
            hosting = frozenset(principal.policy.allowed_hosting)
            call: ProviderCall = app.state.provider_calls.open(
                session,
                principal,
                RequestFacts(request_id=f"outcome-{uuid.uuid4().hex[:8]}"),
                kind=kind,
                route=app.state.provider_router.route(None, hosting),
                estimate=estimate,
            )
            async with call:
                yield call


async def _commune(
    factory: Factory, make_app: AppFactory, router: ProviderRouter | None = None
) -> Commune:
    app = make_app() if router is None else make_app(provider_router=router)
    operator = await factory.operator_key()
    organization = await factory.commune("Saint-Aubin-des-Plumes")
    agent = await factory.key(organization)
    async with client_for(app) as client:
        answer = await client.put(
            f"/v1/admin/organizations/{organization.id}/quotas",
            json=[
                {"metric": "requests", "period": "day", "limit": 10},
                {"metric": "tokens", "period": "day", "limit": 100_000},
            ],
            headers=operator.headers,
        )
        assert answer.status_code == 200, answer.text
    return Commune(organization, app, agent.secret)


@pytest.fixture
async def commune(factory: Factory, make_app: AppFactory) -> Commune:
    return await _commune(factory, make_app)


@dataclass(frozen=True)
class Books:
    """What a commune's calls left behind."""

    records: list[tuple[str, str | None, bool, int]]  # outcome, error, charged, tokens
    entries: list[tuple[str, str]]  # action, outcome
    used_requests: Decimal
    used_tokens: Decimal
    held: Decimal
    reservations: int


async def books(db: AsyncSession, organization: Organization) -> Books:
    records = (
        await db.scalars(
            select(UsageRecord)
            .where(UsageRecord.organization_id == organization.id)
            .order_by(UsageRecord.created_at)
            .execution_options(populate_existing=True)
        )
    ).all()
    entries = (
        await db.scalars(
            select(AuditEntry)
            .where(
                AuditEntry.organization_id == organization.id,
                AuditEntry.action.in_(["chat.completion", "draft.create"]),
            )
            .order_by(AuditEntry.seq)
        )
    ).all()
    counters = {
        counter.metric: counter
        for counter in (
            await db.scalars(
                select(QuotaCounter)
                .where(QuotaCounter.organization_id == organization.id)
                .execution_options(populate_existing=True)
            )
        ).all()
    }
    reservations = (
        await db.scalars(
            select(QuotaReservation).where(QuotaReservation.organization_id == organization.id)
        )
    ).all()
    return Books(
        records=[
            (r.outcome, r.error_code, r.charged, r.prompt_tokens + r.completion_tokens)
            for r in records
        ],
        entries=[(e.action, json.loads(e.body)["outcome"]) for e in entries],
        used_requests=counters["requests"].used if "requests" in counters else Decimal(0),
        used_tokens=counters["tokens"].used if "tokens" in counters else Decimal(0),
        held=sum((c.reserved for c in counters.values()), Decimal(0)),
        reservations=len(reservations),
    )


async def test_a_call_that_succeeds_is_charged_what_it_used(
    commune: Commune, db: AsyncSession
) -> None:
    async with commune.call() as call:
        assert (await books(db, commune.organization)).held > 0  # reserved, committed
        completion = await call.complete(MESSAGES)
        await call.settle()
    after = await books(db, commune.organization)
    assert after.records == [("success", None, True, completion.total_tokens)]
    assert after.entries == [("chat.completion", "success")]
    assert (after.used_requests, after.used_tokens) == (1, completion.total_tokens)
    assert (after.held, after.reservations) == (0, 0)


async def test_a_provider_failure_releases_everything(
    factory: Factory, make_app: AppFactory, db: AsyncSession
) -> None:
    commune = await _commune(factory, make_app, unreachable_router())
    with pytest.raises(ProviderUnavailable):
        async with commune.call() as call:
            await call.complete(MESSAGES)
    after = await books(db, commune.organization)
    assert after.records == [("failure", "provider_unavailable", False, 0)]
    assert after.entries == [("chat.completion", "failure")]
    assert (after.used_requests, after.used_tokens, after.held) == (0, 0, 0)
    assert after.reservations == 0


async def test_plume_failing_after_the_provider_answered_is_charged(
    commune: Commune, db: AsyncSession
) -> None:
    answered = []

    async def request() -> None:
        async with commune.call() as call:
            answered.append(await call.complete(MESSAGES))
            raise RuntimeError("a bug after the answer")

    with pytest.raises(RuntimeError):
        await request()
    completion = answered[0]
    after = await books(db, commune.organization)
    assert after.records == [("failure", "internal_error", True, completion.total_tokens)]
    assert after.entries == [("chat.completion", "failure")]
    assert (after.used_requests, after.used_tokens, after.held) == (1, completion.total_tokens, 0)


async def test_plume_failing_before_asking_the_provider_charges_nothing(
    commune: Commune, db: AsyncSession
) -> None:
    with pytest.raises(KeyError):
        async with commune.call():
            raise KeyError("a bug before the call")
    after = await books(db, commune.organization)
    assert after.records == [("failure", "internal_error", False, 0)]
    assert (after.used_requests, after.held, after.reservations) == (0, 0, 0)


async def test_a_cancelled_call_is_charged_as_the_client_going_away(
    commune: Commune, db: AsyncSession
) -> None:
    started = asyncio.Event()

    async def request() -> None:
        async with commune.call() as call:
            await call.complete(MESSAGES)
            started.set()
            await asyncio.sleep(60)  # the client is gone before this ends

    task = asyncio.create_task(request())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    after = await books(db, commune.organization)
    assert [(outcome, charged) for outcome, _, charged, _ in after.records] == [
        ("client_disconnected", True)
    ]
    assert after.entries == [("chat.completion", "client_disconnected")]
    assert (after.used_requests, after.held) == (1, 0)


async def test_a_block_that_forgets_to_settle_is_settled_as_a_failure(
    commune: Commune, db: AsyncSession
) -> None:
    async with commune.call() as call:
        await call.complete(MESSAGES)
    after = await books(db, commune.organization)
    assert [(o, e, c) for o, e, c, _ in after.records] == [("failure", "internal_error", True)]
    assert (after.held, after.reservations) == (0, 0)


async def _stream_response(call: ProviderCall, read: int | None) -> int:
    """Hand the call to a streamed response, as a route does, and read `read` chunks of
    it (None: all) before the client goes; returns how many it read. The route returns the
    response from its block; the server runs it after, as here."""

    async def body() -> AsyncIterator[bytes]:
        async for delta in call.stream(MESSAGES):
            yield call.sent(delta.encode())
        call.streamed()
        await call.settle()

    response = call.streaming_response(body(), {})
    chunks = 0
    disconnect = asyncio.Event()

    async def receive() -> dict[str, Any]:
        await disconnect.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal chunks
        if message["type"] == "http.response.body" and message.get("body"):
            chunks += 1
            if read is not None and chunks >= read:
                # The client stops reading and hangs up: this send never completes.
                disconnect.set()
                await asyncio.Event().wait()

    scope = {"type": "http", "asgi": {"spec_version": "2.3"}, "method": "POST"}
    await response(scope, receive, send)
    return chunks


async def test_a_stream_read_to_its_end_settles_as_a_success(
    commune: Commune, db: AsyncSession
) -> None:
    async with commune.call() as call:
        await _stream_response(call, read=None)
    after = await books(db, commune.organization)
    assert [(o, c) for o, _, c, _ in after.records] == [("success", True)]
    assert after.entries == [("chat.completion", "success")]
    assert (after.used_requests, after.held, after.reservations) == (1, 0, 0)


async def test_a_stream_whose_client_left_before_it_started_charges_nothing(
    commune: Commune, db: AsyncSession
) -> None:
    async with commune.call() as call:
        response = call.streaming_response(_never_read(), {})
    await response.close()  # what the response does when its client has already gone
    after = await books(db, commune.organization)
    assert after.records == [("failure", "client_disconnected", False, 0)]
    assert (after.used_requests, after.held, after.reservations) == (0, 0, 0)


async def _never_read() -> AsyncIterator[bytes]:
    yield b"never"  # pragma: no cover - the client left first


async def test_a_stream_cut_by_its_client_is_charged_what_it_produced(
    commune: Commune, db: AsyncSession
) -> None:
    async with commune.call() as call:
        read = await _stream_response(call, read=1)
    assert read >= 1
    after = await books(db, commune.organization)
    assert [(o, c) for o, _, c, _ in after.records] == [("client_disconnected", True)]
    assert after.records[0][3] > 0  # the tokens the provider produced until then
    assert (after.used_requests, after.held, after.reservations) == (1, 0, 0)


async def _stream_failing(commune: Commune) -> tuple[ProviderCall, list[str]]:
    """A stream read as a route does, whose provider fails: the deltas that came first."""
    received: list[str] = []
    calls: list[ProviderCall] = []

    async def request() -> None:
        async with commune.call() as call:
            calls.append(call)
            async for delta in call.stream(MESSAGES):
                received.append(delta)

    with pytest.raises(ProviderUnavailable) as failed:
        await request()
    assert "facturé" in failed.value.detail
    return calls[0], received


async def test_a_stream_cut_after_its_first_words_is_charged_what_it_produced(
    factory: Factory, make_app: AppFactory, db: AsyncSession, fake: RecordingProvider
) -> None:
    router = router_for(group("cut", deployment("cut", fake.api_base), default=True))
    commune = await _commune(factory, make_app, router)
    call, received = await _stream_failing(commune)
    assert received  # the first words came through, then the provider dropped the stream
    after = await books(db, commune.organization)
    produced = call.usage.prompt_tokens + call.usage.completion_tokens
    assert call.usage.completion_tokens > 0
    assert after.records == [("failure", "provider_unavailable", True, produced)]
    assert after.entries == [("chat.completion", "failure")]
    assert (after.used_requests, after.used_tokens) == (1, produced)
    assert (after.held, after.reservations) == (0, 0)


async def test_a_stream_that_fails_before_its_first_word_charges_nothing(
    factory: Factory, make_app: AppFactory, db: AsyncSession
) -> None:
    commune = await _commune(factory, make_app, unreachable_router())
    _, received = await _stream_failing(commune)
    assert received == []
    after = await books(db, commune.organization)
    assert after.records == [("failure", "provider_unavailable", False, 0)]
    assert (after.used_requests, after.used_tokens, after.held, after.reservations) == (0, 0, 0, 0)


async def test_a_call_whose_later_provider_call_fails_is_charged_the_earlier_ones(
    factory: Factory, make_app: AppFactory, db: AsyncSession, fake: RecordingProvider
) -> None:
    """A synthèse makes several provider calls: those that answered were paid for, even
    when a later one fails."""
    router = router_for(
        group("standard", deployment("ok-parts", fake.api_base), default=True),
        group("broken", deployment("e500", fake.api_base)),
    )
    commune = await _commune(factory, make_app, router)
    calls: list[ProviderCall] = []

    async def request() -> None:
        async with commune.call("synthese", Estimate(40, 200, calls=3)) as call:
            calls.append(call)
            await call.complete(MESSAGES)
            await call.complete(MESSAGES)
            call.route = router.route("broken", frozenset({"fr"}))
            await call.complete(MESSAGES)

    with pytest.raises(ProviderUnavailable) as failed:
        await request()
    assert "déjà produit vous est facturé" in failed.value.detail
    call = calls[0]
    after = await books(db, commune.organization)
    produced = call.usage.prompt_tokens + call.usage.completion_tokens
    assert call.usage.calls == 2
    assert after.records == [("failure", "provider_unavailable", True, produced)]
    assert (after.used_requests, after.used_tokens, after.held) == (1, produced, 0)


async def test_a_queued_job_keeps_its_reservation_until_it_settles(
    commune: Commune, db: AsyncSession
) -> None:
    async with commune.call("synthese", Estimate(40, 200, calls=3)) as call:
        draft_id = uuid.uuid4()
        call.draft_id = draft_id
        await call.queue(_nothing, answer=lambda _: StoredResponse(202, "application/json", b"{}"))
    queued = await books(db, commune.organization)
    assert queued.records == []  # the job records its usage when it ends
    assert queued.entries == [("draft.create", "accepted")]
    assert (queued.held, queued.reservations) == (1 + call.estimate.tokens, 1)

    resumed = commune.app.state.provider_calls.resume(
        call.principal,
        RequestFacts(request_id=None),
        kind="synthese",
        route=call.route,
        estimate=call.estimate,
        reservation_id=call.reservation_id,
        draft_id=draft_id,
    )
    async with resumed as job:
        for _ in range(3):
            await job.complete(MESSAGES)
        await job.settle()
    done = await books(db, commune.organization)
    assert [(o, c) for o, _, c, _ in done.records] == [("success", True)]
    assert done.records[0][3] == job.usage.prompt_tokens + job.usage.completion_tokens
    assert done.entries == [("draft.create", "accepted"), ("draft.create", "success")]
    assert (done.used_requests, done.held, done.reservations) == (1, 0, 0)


async def test_a_job_settled_elsewhere_is_charged_what_it_consumed_and_stores_nothing(
    commune: Commune, db: AsyncSession
) -> None:
    """A worker whose job another worker took over: what it would have stored rolls back,
    what its provider produced is settled all the same, once."""
    async with commune.call() as call:
        completion = await call.complete(MESSAGES)

        async def finished_by_another_worker(session: AsyncSession) -> None:
            # Something the settlement would have stored (the draft, in a job).
            now = datetime.now(UTC)
            session.add(
                IdempotencyKey(
                    organization_id=commune.organization.id,
                    key="never-written",
                    request_hash="0" * 64,
                    locked_until=now,
                    expires_at=now,
                    created_at=now,
                )
            )
            await session.flush()
            raise SettledElsewhere()

        with pytest.raises(SettledElsewhere):
            await call.settle(finished_by_another_worker)
    after = await books(db, commune.organization)
    assert after.records == [("failure", "lease_lost", True, completion.total_tokens)]
    assert after.entries == [("chat.completion", "failure")]
    assert (after.used_requests, after.used_tokens) == (1, completion.total_tokens)
    assert (after.held, after.reservations) == (0, 0)
    written = await db.scalar(select(IdempotencyKey).where(IdempotencyKey.key == "never-written"))
    assert written is None


async def test_a_settled_call_ignores_every_later_ending(
    commune: Commune, db: AsyncSession
) -> None:

    async def request() -> None:
        async with commune.call() as call:
            await call.complete(MESSAGES)
            await call.settle()
            await call.settle()
            await call.fail(ProviderUnavailable())
            await call.close(client_left=True)
            raise RuntimeError("the block fails after its settlement")

    with pytest.raises(RuntimeError):
        await request()
    after = await books(db, commune.organization)
    assert [(o, c) for o, _, c, _ in after.records] == [("success", True)]
    assert after.entries == [("chat.completion", "success")]
    assert (after.used_requests, after.held) == (1, 0)


async def _nothing(session: AsyncSession) -> None:
    return None
