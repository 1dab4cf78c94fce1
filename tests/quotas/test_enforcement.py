"""Quotas enforced around the provider call: reservation and settlement, refusals a person can
act on, EPCI pools, calendar periods in Paris, and failing closed.

These run in-process against the test's transaction (the offline provider unless said);
tests/quotas/test_quota_concurrency.py runs two worker processes on real commits."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from plume.app import create_app
from plume.credentials import auth as auth_module
from plume.dates import PARIS
from plume.db import create_engine, create_session_factory
from plume.models import UsageRecord
from plume.quotas.periods import window_end, window_start
from tests.support.chat import chat_body
from tests.support.clients import AppFactory, client_for
from tests.support.clock import FakeClock
from tests.support.factories import Factory
from tests.support.problems import assert_openai_error, assert_problem
from tests.support.providers import (
    RecordingProvider,
    deployment,
    group,
    router_for,
    unreachable_router,
)
from tests.support.quotas import ARTICLE, counter, open_reservations, set_quotas
from tests.support.settings import TEST_SECRET, make_settings

# --------------------------------------------------------------------------------------
# Enforcement
# --------------------------------------------------------------------------------------


async def test_a_day_quota_refuses_the_request_over_it_with_a_french_reason(
    client: AsyncClient, factory: Factory, db: AsyncSession
) -> None:
    operator = await factory.operator_key()
    commune = await factory.commune("Saint-Martin-de-Test")
    agent = await factory.key(commune)
    await set_quotas(
        client, operator, commune, [{"metric": "requests", "period": "day", "limit": 2}]
    )

    first = await client.post("/v1/drafts", json=ARTICLE, headers=agent.headers)
    assert first.status_code == 201, first.text
    assert first.headers["ratelimit-limit"] == "2"
    assert first.headers["ratelimit-remaining"] == "1"
    # 9 hours to Paris midnight (15:00 UTC is 16:00 in Paris).
    assert first.headers["ratelimit-reset"] == str(8 * 3600)
    second = await client.post("/v1/drafts", json=ARTICLE, headers=agent.headers)
    assert second.headers["ratelimit-remaining"] == "0"

    refused = await client.post("/v1/drafts", json=ARTICLE, headers=agent.headers)
    body = assert_problem(refused, 429, "quota_exceeded")
    assert refused.headers["retry-after"] == str(8 * 3600)
    assert (refused.headers["ratelimit-limit"], refused.headers["ratelimit-remaining"]) == (
        "2",
        "0",
    )
    assert refused.headers["ratelimit-reset"] == str(8 * 3600)
    assert "2 requêtes par jour" in body["detail"]
    assert "la commune « Saint-Martin-de-Test »" in body["detail"]
    assert "28 novembre 2026 à 00:00 (heure de Paris)" in body["detail"]

    used = await counter(db, commune, "requests", "day")
    assert used is not None
    assert (used.used, used.reserved) == (Decimal(2), Decimal(0))
    assert await open_reservations(db, commune) == 0
    # A refused request reached no provider and left no usage.
    records = await db.scalar(
        select(func.count())
        .select_from(UsageRecord)
        .where(UsageRecord.organization_id == commune.id)
    )
    assert records == 2


async def test_a_minute_quota_answers_rate_limited_with_the_seconds_to_wait(
    client: AsyncClient, factory: Factory, clock: FakeClock
) -> None:
    operator = await factory.operator_key()
    commune = await factory.commune()
    agent = await factory.key(commune)
    await set_quotas(
        client, operator, commune, [{"metric": "requests", "period": "minute", "limit": 1}]
    )
    clock.advance(seconds=20)
    ok = await client.post("/v1/chat/completions", json=chat_body(), headers=agent.headers)
    assert ok.status_code == 200, ok.text
    refused = await client.post("/v1/chat/completions", json=chat_body(), headers=agent.headers)
    error = assert_openai_error(refused, 429, "rate_limited")
    assert refused.headers["retry-after"] == "40"
    assert "1 requête par minute" in error["message"]
    clock.advance(seconds=40)
    again = await client.post("/v1/chat/completions", json=chat_body(), headers=agent.headers)
    assert again.status_code == 200, again.text


async def test_the_refusal_names_the_quota_that_refused_not_another_of_the_same_level(
    client: AsyncClient, factory: Factory, clock: FakeClock
) -> None:
    """A commune with a per-minute limit spent and roomy day and month limits is told to
    wait seconds (rate_limited), not until tomorrow; the EPCI above has room too."""
    operator = await factory.operator_key()
    epci = await factory.epci()
    commune = await factory.commune("Village-Pressé", parent=epci)
    agent = await factory.key(commune)
    await set_quotas(
        client,
        operator,
        commune,
        [
            {"metric": "requests", "period": "minute", "limit": 1},
            {"metric": "requests", "period": "day", "limit": 100},
            {"metric": "cost_eur", "period": "month", "limit": 50},
        ],
    )
    await set_quotas(
        client, operator, epci, [{"metric": "requests", "period": "month", "limit": 1000}]
    )
    clock.advance(seconds=15)
    ok = await client.post("/v1/chat/completions", json=chat_body(), headers=agent.headers)
    assert ok.status_code == 200, ok.text
    # The tightest after this request: the minute limit, spent, back in 45 s.
    assert ok.headers["ratelimit-limit"] == "1"
    assert ok.headers["ratelimit-remaining"] == "0"
    assert ok.headers["ratelimit-reset"] == "45"

    refused = await client.post("/v1/chat/completions", json=chat_body(), headers=agent.headers)
    error = assert_openai_error(refused, 429, "rate_limited")
    assert refused.headers["retry-after"] == "45"
    assert "1 requête par minute" in error["message"]
    assert "la commune « Village-Pressé »" in error["message"]
    assert "par jour" not in error["message"]


async def test_an_epci_quota_is_a_pool_shared_by_its_communes(
    client: AsyncClient, factory: Factory, db: AsyncSession
) -> None:
    operator = await factory.operator_key()
    epci = await factory.epci("CC des Quatre Rivières de test")
    north = await factory.commune("Nord-sur-Test", parent=epci)
    south = await factory.commune("Sud-sur-Test", parent=epci)
    await set_quotas(
        client, operator, epci, [{"metric": "requests", "period": "month", "limit": 3}]
    )
    north_agent, south_agent = await factory.key(north), await factory.key(south)

    for key in (north_agent, south_agent, north_agent):
        response = await client.post("/v1/drafts", json=ARTICLE, headers=key.headers)
        assert response.status_code == 201, response.text
    refused = await client.post("/v1/drafts", json=ARTICLE, headers=south_agent.headers)
    body = assert_problem(refused, 429, "quota_exceeded")
    assert "l'EPCI « CC des Quatre Rivières de test »" in body["detail"]
    assert "1er décembre 2026 à 00:00" in body["detail"]
    pool = await counter(db, epci, "requests", "month")
    assert pool is not None
    assert pool.used == 3


async def test_a_commune_quota_under_its_epci_refuses_first_and_names_the_commune(
    client: AsyncClient, factory: Factory
) -> None:
    operator = await factory.operator_key()
    epci = await factory.epci()
    commune = await factory.commune("Petit-Village", parent=epci)
    await set_quotas(
        client, operator, epci, [{"metric": "requests", "period": "day", "limit": 100}]
    )
    await set_quotas(
        client, operator, commune, [{"metric": "requests", "period": "day", "limit": 1}]
    )
    agent = await factory.key(commune)
    assert (await client.post("/v1/drafts", json=ARTICLE, headers=agent.headers)).status_code == 201
    body = assert_problem(
        await client.post("/v1/drafts", json=ARTICLE, headers=agent.headers), 429, "quota_exceeded"
    )
    assert "la commune « Petit-Village »" in body["detail"]


async def test_tokens_are_reserved_then_settled_with_the_real_usage(
    client: AsyncClient, factory: Factory, db: AsyncSession
) -> None:
    operator = await factory.operator_key()
    commune = await factory.commune()
    agent = await factory.key(commune)
    await set_quotas(
        client, operator, commune, [{"metric": "tokens", "period": "day", "limit": 1_000_000}]
    )
    response = await client.post("/v1/drafts", json=ARTICLE, headers=agent.headers)
    assert response.status_code == 201, response.text
    usage = response.json()["usage"]
    tokens = await counter(db, commune, "tokens", "day")
    assert tokens is not None
    assert tokens.used == usage["prompt_tokens"] + usage["completion_tokens"] > 0
    assert tokens.reserved == 0
    # The headers were computed against the reservation (the estimate, before settling).
    assert int(response.headers["ratelimit-remaining"]) < 1_000_000 - tokens.used
    record = await db.scalar(select(UsageRecord).where(UsageRecord.organization_id == commune.id))
    assert record is not None
    assert (record.outcome, record.kind, record.provider) == (
        "success",
        "bulletin_article",
        "offline",
    )
    assert record.prompt_tokens + record.completion_tokens == tokens.used


async def test_a_request_too_big_for_the_quota_on_its_own_says_so(
    client: AsyncClient, factory: Factory
) -> None:
    """The reservation is the prompt plus the most the answer may take (the group's cap of
    2,048 tokens, or the request's own if lower)."""
    operator = await factory.operator_key()
    commune = await factory.commune()
    agent = await factory.key(commune)
    await set_quotas(
        client, operator, commune, [{"metric": "tokens", "period": "day", "limit": 1500}]
    )
    body = assert_problem(
        await client.post("/v1/drafts", json=ARTICLE, headers=agent.headers), 429, "quota_exceeded"
    )
    assert "à elle seule" in body["detail"]
    assert "max_output_tokens" in body["detail"]
    small = {**ARTICLE, "max_output_tokens": 300}
    fits = await client.post("/v1/drafts", json=small, headers=agent.headers)
    assert fits.status_code == 201, fits.text


async def test_a_failed_provider_call_releases_everything_it_reserved(
    make_app: AppFactory, factory: Factory, db: AsyncSession
) -> None:
    app = make_app(provider_router=unreachable_router())
    operator = await factory.operator_key()
    commune = await factory.commune()
    agent = await factory.key(commune)
    async with client_for(app) as http:
        await set_quotas(
            http,
            operator,
            commune,
            [
                {"metric": "requests", "period": "day", "limit": 5},
                {"metric": "cost_eur", "period": "month", "limit": 1},
            ],
        )
        response = await http.post("/v1/chat/completions", json=chat_body(), headers=agent.headers)
        assert_openai_error(response, 502, "provider_unavailable")
    for metric, period in (("requests", "day"), ("cost_eur", "month")):
        row = await counter(db, commune, metric, period)
        assert row is not None
        assert (row.used, row.reserved) == (Decimal(0), Decimal(0)), metric
    assert await open_reservations(db, commune) == 0
    record = await db.scalar(select(UsageRecord).where(UsageRecord.organization_id == commune.id))
    assert record is not None
    assert (record.outcome, record.error_code, record.charged) == (
        "failure",
        "provider_unavailable",
        False,
    )


async def test_an_organisation_without_quota_is_not_limited_and_gets_no_ratelimit_headers(
    client: AsyncClient, factory: Factory
) -> None:
    agent = await factory.key(await factory.commune())
    response = await client.post("/v1/drafts", json=ARTICLE, headers=agent.headers)
    assert response.status_code == 201
    assert "ratelimit-limit" not in response.headers


async def test_a_changed_or_removed_quota_takes_effect_on_the_next_request(
    client: AsyncClient, factory: Factory
) -> None:
    """The limits a reservation checks are the ones last set: raised, the commune may go
    on; removed, it is no longer limited at all (what was counted is kept)."""
    operator = await factory.operator_key()
    commune = await factory.commune()
    agent = await factory.key(commune)
    day = [{"metric": "requests", "period": "day", "limit": 1}]
    assert (await set_quotas(client, operator, commune, day)).status_code == 200
    assert (await client.post("/v1/drafts", json=ARTICLE, headers=agent.headers)).status_code == 201
    assert_problem(
        await client.post("/v1/drafts", json=ARTICLE, headers=agent.headers), 429, "quota_exceeded"
    )

    raised = [{"metric": "requests", "period": "day", "limit": 2}]
    assert (await set_quotas(client, operator, commune, raised)).status_code == 200
    again = await client.post("/v1/drafts", json=ARTICLE, headers=agent.headers)
    assert again.status_code == 201, again.text
    assert (again.headers["ratelimit-limit"], again.headers["ratelimit-remaining"]) == ("2", "0")

    assert (await set_quotas(client, operator, commune, [])).status_code == 200
    free = await client.post("/v1/drafts", json=ARTICLE, headers=agent.headers)
    assert free.status_code == 201, free.text
    assert "ratelimit-limit" not in free.headers

    # Set again the same day: what was counted while a quota was set still counts.
    assert (await set_quotas(client, operator, commune, raised)).status_code == 200
    assert_problem(
        await client.post("/v1/drafts", json=ARTICLE, headers=agent.headers), 429, "quota_exceeded"
    )


# --------------------------------------------------------------------------------------
# Calendar periods in Paris
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "period", "start", "end"),
    [
        # 23:30 UTC on 30 November is 00:30 on 1 December in Paris: December's window.
        (
            "2026-11-30T23:30:00+00:00",
            "month",
            "2026-12-01T00:00:00+01:00",
            "2027-01-01T00:00:00+01:00",
        ),
        (
            "2026-11-30T22:59:59+00:00",
            "month",
            "2026-11-01T00:00:00+01:00",
            "2026-12-01T00:00:00+01:00",
        ),
        # Summer time starts on 28 March 2027: that day lasts 23 hours.
        (
            "2027-03-28T12:00:00+00:00",
            "day",
            "2027-03-28T00:00:00+01:00",
            "2027-03-29T00:00:00+02:00",
        ),
        # Winter time returns on 25 October 2026: that day lasts 25 hours.
        (
            "2026-10-25T12:00:00+00:00",
            "day",
            "2026-10-25T00:00:00+02:00",
            "2026-10-26T00:00:00+01:00",
        ),
        # April's window starts at midnight summer time.
        (
            "2027-04-15T08:00:00+00:00",
            "month",
            "2027-04-01T00:00:00+02:00",
            "2027-05-01T00:00:00+02:00",
        ),
        (
            "2026-12-31T23:00:00+00:00",
            "month",
            "2027-01-01T00:00:00+01:00",
            "2027-02-01T00:00:00+01:00",
        ),
        (
            "2026-11-27T15:00:42+00:00",
            "minute",
            "2026-11-27T16:00:00+01:00",
            "2026-11-27T16:01:00+01:00",
        ),
    ],
)
def test_periods_are_calendar_periods_in_paris(now: str, period: str, start: str, end: str) -> None:
    moment = datetime.fromisoformat(now)
    began = window_start(period, moment)
    assert began == datetime.fromisoformat(start)
    assert window_end(period, began) == datetime.fromisoformat(end)
    assert began.astimezone(PARIS).isoformat() == start


async def test_a_month_quota_resets_at_paris_midnight_on_the_first(
    client: AsyncClient, factory: Factory, clock: FakeClock
) -> None:
    operator = await factory.operator_key()
    commune = await factory.commune()
    agent = await factory.key(commune)
    await set_quotas(
        client, operator, commune, [{"metric": "requests", "period": "month", "limit": 1}]
    )
    clock.current = datetime(2026, 11, 30, 22, 59, 0, tzinfo=UTC)  # 23:59 in Paris
    assert (await client.post("/v1/drafts", json=ARTICLE, headers=agent.headers)).status_code == 201
    refused = await client.post("/v1/drafts", json=ARTICLE, headers=agent.headers)
    assert_problem(refused, 429, "quota_exceeded")
    assert refused.headers["retry-after"] == "60"
    clock.advance(seconds=61)  # 00:00:01 on 1 December in Paris, still November in UTC
    assert (await client.post("/v1/drafts", json=ARTICLE, headers=agent.headers)).status_code == 201


# --------------------------------------------------------------------------------------
# Failing closed
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "idempotency_key",
    [None, "goes-away"],
    ids=["first-transaction-without-session", "first-transaction-in-session"],
)
async def test_when_the_database_goes_away_after_authentication_no_provider_is_called(
    committed_database_url: str,
    fake: RecordingProvider,
    monkeypatch: pytest.MonkeyPatch,
    idempotency_key: str | None,
) -> None:
    """The connection dies between authentication and the reservation (same transaction):
    503, and the provider never hears of it, so no request is ever served uncounted. Whether
    the key's lookup went through the request's session (a request with an Idempotency-Key)
    or began the first transaction on a connection of its own (without)."""
    engine = create_engine(committed_database_url)
    async with create_session_factory(engine)() as session, session.begin():
        setup = Factory(session, TEST_SECRET)
        agent = await setup.key(await setup.commune())
    admin_url = committed_database_url.replace("postgresql+psycopg://", "postgresql://", 1)

    def kill(pid: int) -> None:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))

    def kill_after_authentication(connection: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "api_key_lookup" in statement:
            kill(connection.connection.driver_connection.info.backend_pid)

    lookup = auth_module.lookup_alone

    async def lookup_then_kill(driver: psycopg.AsyncConnection[Any], *args: Any) -> Any:
        found = await lookup(driver, *args)
        kill(driver.info.backend_pid)
        return found

    monkeypatch.setattr(auth_module, "lookup_alone", lookup_then_kill)
    received = len(fake.received)
    router = router_for(
        group("standard", deployment("openai/ok", api_base=fake.api_base), default=True)
    )
    app = create_app(make_settings(committed_database_url), engine=engine, provider_router=router)
    headers = dict(agent.headers)
    event.listen(engine.sync_engine, "after_cursor_execute", kill_after_authentication)
    try:
        async with client_for(app) as http:
            if idempotency_key is not None:
                headers["Idempotency-Key"] = f"{idempotency_key}-chat"
            chat = await http.post(
                "/v1/chat/completions", json=chat_body("standard"), headers=headers
            )
            assert_openai_error(chat, 503, "unavailable")
            if idempotency_key is not None:
                headers["Idempotency-Key"] = f"{idempotency_key}-draft"
            draft = await http.post("/v1/drafts", json=ARTICLE, headers=headers)
            assert_problem(draft, 503, "unavailable")
    finally:
        event.remove(engine.sync_engine, "after_cursor_execute", kill_after_authentication)
        await engine.dispose()
    assert len(fake.received) == received  # the provider never heard of it


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/drafts"])
async def test_a_stream_whose_client_left_before_it_started_is_still_settled(
    app: FastAPI, client: AsyncClient, factory: Factory, db: AsyncSession, path: str
) -> None:
    """The client hangs up before the first event is sent: the generator that would settle
    the call never starts, yet nothing stays reserved and the request is recorded."""
    operator = await factory.operator_key()
    commune = await factory.commune()
    agent = await factory.key(commune)
    await set_quotas(
        client, operator, commune, [{"metric": "requests", "period": "day", "limit": 5}]
    )
    body = chat_body(stream=True) if path.endswith("completions") else {**ARTICLE, "stream": True}
    raw = json.dumps(body).encode()
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"plume.test"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(raw)).encode()),
            (b"authorization", agent.headers["Authorization"].encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("plume.test", 80),
    }
    messages = [{"type": "http.request", "body": raw, "more_body": False}]

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            raise OSError("the client went away")

    with contextlib.suppress(OSError):  # the server logs it, and has no one to answer
        await app(scope, receive, send)

    assert await open_reservations(db, commune) == 0
    held = await counter(db, commune, "requests", "day")
    assert held is not None
    assert held.reserved == 0
    record = await db.scalar(select(UsageRecord).where(UsageRecord.organization_id == commune.id))
    assert record is not None
    expected = "client_disconnected" if path.endswith("completions") else "failure"
    assert record.outcome == expected
