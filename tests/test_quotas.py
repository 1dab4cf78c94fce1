"""Quotas: settings and their validation, reservation and settlement around the provider
call, refusals a person can act on, EPCI pools and splits, calendar periods in Paris, and
the sweep that frees what a dead request held.

These run in-process against the test's transaction (the offline provider unless said);
tests/test_quota_concurrency.py runs two worker processes on real commits.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from fastapi import FastAPI
from httpx import AsyncClient, Response
from sqlalchemy import event, func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from plume.app import create_app
from plume.calls.context import Estimate, RequestFacts
from plume.calls.unit import ProviderCall
from plume.credentials.auth import authenticate_token
from plume.dates import PARIS
from plume.db import TenantScope, create_engine, create_session_factory, enter_tenant_context
from plume.models import Organization, QuotaCounter, QuotaReservation, UsageRecord
from plume.quotas.periods import window_end, window_start
from tests.support.chat import chat_body
from tests.support.clients import AppFactory, client_for
from tests.support.clock import FakeClock
from tests.support.factories import Factory, Key
from tests.support.problems import assert_openai_error, assert_problem
from tests.support.providers import (
    deployment,
    group,
    router_for,
    running_recording_provider,
    unreachable_router,
)
from tests.support.settings import TEST_SECRET, make_settings

ARTICLE = {
    "kind": "bulletin_article",
    "subject": "Atelier de réparation de vélos",
    "key_points": ["samedi 14 h", "salle des fêtes", "gratuit"],
}


@pytest.fixture
def clock() -> FakeClock:
    # A Friday afternoon in Paris.
    return FakeClock(datetime(2026, 11, 27, 15, 0, 0, tzinfo=UTC))


@pytest.fixture
def app_overrides(clock: FakeClock) -> dict[str, Any]:
    return {"clock": clock}


async def set_quotas(
    client: AsyncClient, operator: Key, organization: Organization, quotas: list[dict[str, Any]]
) -> Response:
    return await client.put(
        f"/v1/admin/organizations/{organization.id}/quotas", json=quotas, headers=operator.headers
    )


async def counter(
    db: AsyncSession, organization: Organization, metric: str, period: str
) -> QuotaCounter | None:
    rows = (
        await db.scalars(
            select(QuotaCounter)
            .where(
                QuotaCounter.organization_id == organization.id,
                QuotaCounter.metric == metric,
                QuotaCounter.period == period,
            )
            .order_by(QuotaCounter.window_start.desc())
            .execution_options(populate_existing=True)
        )
    ).all()
    return rows[0] if rows else None


async def open_reservations(db: AsyncSession, *organizations: Organization) -> int:
    ids = [o.id for o in organizations]
    count = await db.scalar(
        select(func.count())
        .select_from(QuotaReservation)
        .where(QuotaReservation.organization_id.in_(ids))
    )
    return int(count or 0)


# --------------------------------------------------------------------------------------
# Setting quotas
# --------------------------------------------------------------------------------------


async def test_the_operator_sets_and_reads_quotas_and_the_list_replaces_the_old_one(
    client: AsyncClient, factory: Factory
) -> None:
    operator = await factory.operator_key()
    commune = await factory.commune()
    response = await set_quotas(
        client,
        operator,
        commune,
        [
            {"metric": "requests", "period": "day", "limit": 50},
            {"metric": "cost_eur", "period": "month", "limit": 12.5},
        ],
    )
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    assert {(i["metric"], i["period"], i["limit"]) for i in items} == {
        ("requests", "day", 50),
        ("cost_eur", "month", 12.5),
    }
    first = next(i for i in items if i["metric"] == "requests")
    assert first["used"] == 0
    assert first["reserved"] == 0
    assert first["remaining"] == 50
    # The next Paris midnight, with its offset.
    assert first["resets_at"] == "2026-11-28T00:00:00+01:00"

    response = await set_quotas(
        client, operator, commune, [{"metric": "tokens", "period": "minute", "limit": 9000}]
    )
    assert response.status_code == 200, response.text
    read = await client.get(
        f"/v1/admin/organizations/{commune.id}/quotas", headers=operator.headers
    )
    assert [(i["metric"], i["period"]) for i in read.json()["items"]] == [("tokens", "minute")]

    cleared = await set_quotas(client, operator, commune, [])
    assert cleared.json() == {"items": []}


@pytest.mark.parametrize(
    ("quotas", "field"),
    [
        ([{"metric": "requests", "period": "day", "limit": 0}], "[0].limit"),
        ([{"metric": "requests", "period": "day", "limit": -5}], "[0].limit"),
        ([{"metric": "requests", "period": "day", "limit": 2.5}], "[0].limit"),
        ([{"metric": "pages", "period": "day", "limit": 5}], "[0].metric"),
        ([{"metric": "tokens", "period": "week", "limit": 5}], "[0].period"),
        ([{"metric": "tokens", "period": "day"}], "[0].limit"),
        ([{"metric": "tokens", "period": "day", "limit": 5, "hard": True}], "[0].hard"),
        (
            [
                {"metric": "tokens", "period": "day", "limit": 5},
                {"metric": "tokens", "period": "day", "limit": 7},
            ],
            "[1].period",
        ),
    ],
)
async def test_invalid_quotas_are_422_naming_the_field(
    client: AsyncClient, factory: Factory, quotas: list[dict[str, Any]], field: str
) -> None:
    operator = await factory.operator_key()
    commune = await factory.commune()
    body = assert_problem(
        await set_quotas(client, operator, commune, quotas), 422, "invalid_request"
    )
    assert field in {e["field"] for e in body["errors"]}, body
    read = await client.get(
        f"/v1/admin/organizations/{commune.id}/quotas", headers=operator.headers
    )
    assert read.json() == {"items": []}


async def test_only_the_operator_sets_quotas_and_an_unknown_organisation_is_404(
    client: AsyncClient, factory: Factory
) -> None:
    commune = await factory.commune()
    admin = await factory.key(commune, "tenant_admin")
    quotas = [{"metric": "requests", "period": "day", "limit": 1000}]
    assert_problem(await set_quotas(client, admin, commune, quotas), 403, "forbidden")
    operator = await factory.operator_key()
    response = await client.put(
        f"/v1/admin/organizations/{uuid.uuid4()}/quotas", json=quotas, headers=operator.headers
    )
    assert_problem(response, 404, "not_found")


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
# Reading quotas, and an EPCI's split
# --------------------------------------------------------------------------------------


async def test_a_commune_reads_its_quotas_and_its_ancestors_with_use(
    client: AsyncClient, factory: Factory
) -> None:
    operator = await factory.operator_key()
    epci = await factory.epci()
    commune = await factory.commune(parent=epci)
    await set_quotas(
        client, operator, epci, [{"metric": "requests", "period": "month", "limit": 40}]
    )
    await set_quotas(
        client, operator, commune, [{"metric": "requests", "period": "day", "limit": 4}]
    )
    agent = await factory.key(commune)
    await client.post("/v1/drafts", json=ARTICLE, headers=agent.headers)

    response = await client.get("/v1/quotas", headers=agent.headers)
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    assert [(i["organization_id"], i["limit"], i["used"], i["remaining"]) for i in items] == [
        (str(commune.id), 4, 1, 3),
        (str(epci.id), 40, 1, 39),
    ]
    assert items[1]["resets_at"] == "2026-12-01T00:00:00+01:00"


async def test_an_epci_admin_splits_its_allowance_never_beyond_its_own(
    client: AsyncClient, factory: Factory
) -> None:
    operator = await factory.operator_key()
    epci = await factory.epci("CC Partage")
    first = await factory.commune(parent=epci)
    second = await factory.commune(parent=epci)
    await set_quotas(
        client, operator, epci, [{"metric": "tokens", "period": "month", "limit": 1000}]
    )
    admin = await factory.key(epci, "tenant_admin")
    give = [{"metric": "tokens", "period": "month", "limit": 600}]
    ok = await client.put(
        f"/v1/quotas?organization_id={first.id}", json=give, headers=admin.headers
    )
    assert ok.status_code == 200, ok.text
    assert ok.json()["items"][0]["limit"] == 600

    too_much = await client.put(
        f"/v1/quotas?organization_id={second.id}", json=give, headers=admin.headers
    )
    body = assert_problem(too_much, 422, "invalid_request")
    assert body["errors"][0]["field"] == "[0].limit"
    assert "400" in body["errors"][0]["message"]
    fits = [{"metric": "tokens", "period": "month", "limit": 400}]
    response = await client.put(
        f"/v1/quotas?organization_id={second.id}", json=fits, headers=admin.headers
    )
    assert response.status_code == 200, response.text
    # Changing the first commune's share counts only the others against the pool.
    lower = [{"metric": "tokens", "period": "month", "limit": 500}]
    response = await client.put(
        f"/v1/quotas?organization_id={first.id}", json=lower, headers=admin.headers
    )
    assert response.status_code == 200, response.text

    # The EPCI admin reads one of its communes' quotas with its own.
    read = await client.get(f"/v1/quotas?organization_id={first.id}", headers=admin.headers)
    assert [i["organization_id"] for i in read.json()["items"]] == [str(first.id), str(epci.id)]


async def test_only_an_epci_admin_splits_and_only_among_its_own_communes(
    client: AsyncClient, factory: Factory
) -> None:
    epci = await factory.epci()
    commune = await factory.commune(parent=epci)
    other_epci = await factory.epci()
    stranger = await factory.commune(parent=other_epci)
    quotas = [{"metric": "requests", "period": "day", "limit": 5}]

    agent = await factory.key(epci, "agent")
    assert_problem(
        await client.put(
            f"/v1/quotas?organization_id={commune.id}", json=quotas, headers=agent.headers
        ),
        403,
        "forbidden",
    )
    commune_admin = await factory.key(commune, "tenant_admin")
    assert_problem(
        await client.put(
            f"/v1/quotas?organization_id={commune.id}", json=quotas, headers=commune_admin.headers
        ),
        403,
        "forbidden",
    )
    admin = await factory.key(epci, "tenant_admin")
    assert_problem(
        await client.put(
            f"/v1/quotas?organization_id={stranger.id}", json=quotas, headers=admin.headers
        ),
        404,
        "not_found",
    )
    assert_problem(
        await client.get(f"/v1/quotas?organization_id={stranger.id}", headers=admin.headers),
        404,
        "not_found",
    )
    body = assert_problem(
        await client.put("/v1/quotas", json=quotas, headers=admin.headers), 422, "invalid_request"
    )
    assert body["errors"][0]["field"] == "organization_id"


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
# The sweep
# --------------------------------------------------------------------------------------


async def test_the_sweep_releases_a_reservation_its_request_never_settled(
    app: FastAPI, client: AsyncClient, factory: Factory, db: AsyncSession, clock: FakeClock
) -> None:
    """A process killed during the provider call leaves its reservation: the sweep frees it
    once it has expired, and only then."""
    operator = await factory.operator_key()
    epci = await factory.epci()
    commune = await factory.commune(parent=epci)
    await set_quotas(client, operator, epci, [{"metric": "requests", "period": "day", "limit": 1}])
    agent = await factory.key(commune)
    me = (await client.get("/v1/organization", headers=agent.headers)).json()
    assert me["id"] == str(commune.id)

    # Phase 1 of a request, as a process would run it before dying mid-call.
    call = await _reserved_call(app, agent, "chat", Estimate(prompt_tokens=10, output_tokens=100))
    assert call.reservation_id is not None
    held = await counter(db, epci, "requests", "day")
    assert held is not None
    assert held.reserved == 1
    assert_problem(
        await client.post("/v1/drafts", json=ARTICLE, headers=agent.headers), 429, "quota_exceeded"
    )

    sweeper = app.state.quota_sweeper
    assert await sweeper.run_once() == 0  # not expired yet
    clock.advance(seconds=app.state.settings.quota_reservation_ttl_s + 1)
    assert await sweeper.run_once() == 1
    freed = await counter(db, epci, "requests", "day")
    assert freed is not None
    assert (freed.used, freed.reserved) == (Decimal(0), Decimal(0))
    assert await open_reservations(db, commune) == 0
    assert (await client.post("/v1/drafts", json=ARTICLE, headers=agent.headers)).status_code == 201


def _refused(error: DBAPIError) -> bool:
    return isinstance(error.orig, psycopg.errors.InsufficientPrivilege)


async def test_the_ledger_moves_only_through_its_functions_for_the_callers_own_requests(
    client: AsyncClient, factory: Factory, db: AsyncSession
) -> None:
    """Under the application role, a commune's transaction cannot write the ledger or the
    reservations itself, cannot reserve for another commune, and cannot settle another
    commune's reservation; reserving for itself reaches its EPCI's ledger too."""
    operator = await factory.operator_key()
    epci = await factory.epci()
    mine = await factory.commune(parent=epci)
    other = await factory.commune(parent=epci)
    for organization in (epci, mine, other):
        await set_quotas(
            client, operator, organization, [{"metric": "requests", "period": "day", "limit": 9}]
        )
    operator_id = (await factory.operator()).id
    now = datetime.now(UTC)
    reserve = text("SELECT accepted FROM quota_reserve(:id, :organization, :now, 10, 0, :now)")

    # Another commune's request holds a reservation (the system's scope, for the set-up).
    await enter_tenant_context(db, TenantScope.everything())
    theirs = uuid.uuid4()
    assert await db.scalar(reserve, {"id": theirs, "organization": other.id, "now": now})

    await enter_tenant_context(
        db, TenantScope(frozenset({mine.id}), ancestor_ids=frozenset({epci.id, operator_id}))
    )
    for statement in (
        "UPDATE quota_ledger SET reserved_requests = 0",
        "DELETE FROM quota_reservations",
        "INSERT INTO quota_ledger (organization_id, minute_start, day_start, month_start)"
        " VALUES (gen_random_uuid(), now(), now(), now())",
    ):
        async with db.begin_nested() as savepoint:
            with pytest.raises(DBAPIError) as denied:
                await db.execute(text(statement))
            await savepoint.rollback()
        assert _refused(denied.value), statement

    async with db.begin_nested() as savepoint:
        with pytest.raises(DBAPIError) as outside:
            await db.execute(reserve, {"id": uuid.uuid4(), "organization": other.id, "now": now})
        await savepoint.rollback()
    assert _refused(outside.value)
    assert "outside this transaction's scope" in str(outside.value.orig)

    # Settling (releasing) the other commune's reservation finds nothing it may touch.
    released = await db.scalar(
        text("SELECT quota_settle(:id, 0, 0, 0, NULL, NULL)"), {"id": theirs}
    )
    assert released is False

    assert await db.scalar(reserve, {"id": uuid.uuid4(), "organization": mine.id, "now": now})
    held = {
        organization_id: (used, reserved)
        for organization_id, used, reserved in (
            await db.execute(
                select(QuotaCounter.organization_id, QuotaCounter.used, QuotaCounter.reserved)
            )
        ).all()
    }
    assert held == {mine.id: (0, 1), epci.id: (0, 2)}  # the EPCI also holds the other's

    await db.execute(text("RESET ROLE"))
    reservations = await db.scalar(
        select(func.count()).select_from(QuotaReservation).where(QuotaReservation.id == theirs)
    )
    assert reservations == 1


async def test_only_an_organisations_parent_or_the_operator_may_write_its_quotas(
    client: AsyncClient, factory: Factory, db: AsyncSession
) -> None:
    """The database's own guarantee behind the routes: a commune's admin cannot raise its
    own limits, nor an EPCI's its own; an EPCI's transaction may set its communes'."""
    operator = await factory.operator_key()
    epci = await factory.epci()
    mine = await factory.commune(parent=epci)
    for organization in (epci, mine):
        await set_quotas(
            client, operator, organization, [{"metric": "requests", "period": "day", "limit": 9}]
        )
    raise_limit = text('UPDATE quotas SET "limit" = 1000 WHERE organization_id = :organization')

    await enter_tenant_context(db, TenantScope(frozenset({mine.id})))
    assert (await db.execute(raise_limit, {"organization": mine.id})).rowcount == 0  # type: ignore[attr-defined]
    async with db.begin_nested() as savepoint:
        with pytest.raises(DBAPIError) as denied:
            await db.execute(
                text(
                    'INSERT INTO quotas (id, organization_id, metric, period, "limit")'
                    " VALUES (gen_random_uuid(), :organization, 'tokens', 'day', 1)"
                ),
                {"organization": mine.id},
            )
        await savepoint.rollback()
    assert _refused(denied.value)

    await enter_tenant_context(db, TenantScope(frozenset({epci.id, mine.id})))
    assert (await db.execute(raise_limit, {"organization": epci.id})).rowcount == 0  # type: ignore[attr-defined]
    assert (await db.execute(raise_limit, {"organization": mine.id})).rowcount == 1  # type: ignore[attr-defined]


async def test_quota_tables_are_scoped_by_row_level_security(
    client: AsyncClient, factory: Factory, db: AsyncSession
) -> None:
    """Under the application role, a commune sees its own and its ancestors' quotas, and
    no other commune's."""
    operator = await factory.operator_key()
    epci = await factory.epci()
    mine = await factory.commune(parent=epci)
    other = await factory.commune(parent=epci)
    for organization in (epci, mine, other):
        await set_quotas(
            client, operator, organization, [{"metric": "requests", "period": "day", "limit": 9}]
        )
    operator_id = (await factory.operator()).id
    await db.execute(text("SET LOCAL ROLE plume_app"))
    await db.execute(
        text(
            "SELECT set_config('plume.all_organizations', 'off', true),"
            " set_config('plume.organizations', :mine, true),"
            " set_config('plume.ancestors', :ancestors, true)"
        ),
        {"mine": str(mine.id), "ancestors": f"{epci.id},{operator_id}"},
    )
    visible = set((await db.execute(text("SELECT organization_id FROM quotas"))).scalars().all())
    assert visible == {mine.id, epci.id}
    updated = await db.execute(
        text('UPDATE quotas SET "limit" = 1000 WHERE organization_id = :epci'), {"epci": epci.id}
    )
    assert updated.rowcount == 0  # type: ignore[attr-defined]
    await db.execute(text("RESET ROLE"))
    limit = await db.scalar(
        select(text('"limit"')).select_from(text("quotas")).where(text("organization_id = :e")),
        {"e": epci.id},
    )
    assert Decimal(limit) == 9


# --------------------------------------------------------------------------------------
# Failing closed
# --------------------------------------------------------------------------------------


async def test_when_the_database_goes_away_after_authentication_no_provider_is_called(
    committed_database_url: str,
) -> None:
    """The connection dies between authentication and the reservation (same transaction):
    503, and the provider never hears of it, so no request is ever served uncounted."""
    engine = create_engine(committed_database_url)
    async with create_session_factory(engine)() as session, session.begin():
        setup = Factory(session, TEST_SECRET)
        agent = await setup.key(await setup.commune())
    admin_url = committed_database_url.replace("postgresql+psycopg://", "postgresql://", 1)

    def kill_after_authentication(connection: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "FROM api_keys" in statement:
            pid = connection.connection.driver_connection.info.backend_pid
            with psycopg.connect(admin_url, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (pid,))

    with running_recording_provider() as provider:
        router = router_for(
            group("standard", deployment("openai/ok", api_base=provider.api_base), default=True)
        )
        app = create_app(
            make_settings(committed_database_url), engine=engine, provider_router=router
        )
        event.listen(engine.sync_engine, "after_cursor_execute", kill_after_authentication)
        try:
            async with client_for(app) as http:
                chat = await http.post(
                    "/v1/chat/completions", json=chat_body("standard"), headers=agent.headers
                )
                assert_openai_error(chat, 503, "unavailable")
                draft = await http.post("/v1/drafts", json=ARTICLE, headers=agent.headers)
                assert_problem(draft, 503, "unavailable")
        finally:
            event.remove(engine.sync_engine, "after_cursor_execute", kill_after_authentication)
            await engine.dispose()
        assert provider.received == []


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


async def test_an_epci_splits_only_what_it_has_and_keeps_the_operators_other_limits(
    client: AsyncClient, factory: Factory
) -> None:
    operator = await factory.operator_key()
    epci = await factory.epci()
    commune = await factory.commune(parent=epci)
    await set_quotas(client, operator, epci, [{"metric": "requests", "period": "day", "limit": 50}])
    await set_quotas(
        client,
        operator,
        commune,
        [
            {"metric": "cost_eur", "period": "month", "limit": 5},
            {"metric": "requests", "period": "day", "limit": 10},
        ],
    )
    admin = await factory.key(epci, "tenant_admin")
    url = f"/v1/quotas?organization_id={commune.id}"
    # Removing or raising the operator's cost cap is not the EPCI's to do.
    raise_cost = [{"metric": "cost_eur", "period": "month", "limit": 1_000_000}]
    body = assert_problem(
        await client.put(url, json=raise_cost, headers=admin.headers), 422, "invalid_request"
    )
    assert body["errors"][0]["field"] == "[0].period"
    assert "n'a pas de quota" in body["errors"][0]["message"]
    emptied = await client.put(url, json=[], headers=admin.headers)
    assert emptied.status_code == 200, emptied.text
    assert [(i["metric"], i["limit"]) for i in emptied.json()["items"]] == [("cost_eur", 5)]
    resplit = await client.put(
        url, json=[{"metric": "requests", "period": "day", "limit": 20}], headers=admin.headers
    )
    assert {(i["metric"], i["limit"]) for i in resplit.json()["items"]} == {
        ("cost_eur", 5),
        ("requests", 20),
    }


async def _reserved_call(app: FastAPI, agent: Key, kind: str, estimate: Estimate) -> ProviderCall:
    """A provider call of `agent`'s, past its reservation (the unit of work's first phase)."""
    async with app.state.session_factory() as session:
        principal = await authenticate_token(session, app.state.settings, agent.secret)
        route = app.state.provider_router.route(None, frozenset(principal.policy.allowed_hosting))
        call: ProviderCall = app.state.provider_calls.open(
            session,
            principal,
            RequestFacts(request_id=f"test-{kind}"),
            kind=kind,
            route=route,
            estimate=estimate,
        )
        await call.__aenter__()
    return call


async def test_a_call_is_settled_once_however_often_it_is_closed(
    app: FastAPI, client: AsyncClient, factory: Factory, db: AsyncSession
) -> None:
    """A late second settlement (a stream finalised after it was already settled, a block
    ending after its call was settled) changes nothing: no second charge, no second usage
    row."""
    operator = await factory.operator_key()
    commune = await factory.commune()
    agent = await factory.key(commune)
    await set_quotas(
        client, operator, commune, [{"metric": "requests", "period": "day", "limit": 9}]
    )
    call = await _reserved_call(app, agent, "chat", Estimate(prompt_tokens=5, output_tokens=50))
    await call.complete([{"role": "user", "content": "Rédige une phrase."}])
    for _ in range(2):
        await call.close(client_left=True)
    await call.close(RuntimeError("late"))
    assert await call.settle() is None
    await call.__aexit__(None, None, None)
    used = await counter(db, commune, "requests", "day")
    assert used is not None
    assert (used.used, used.reserved) == (Decimal(1), Decimal(0))
    records = (
        await db.scalars(select(UsageRecord).where(UsageRecord.organization_id == commune.id))
    ).all()
    assert [(r.outcome, r.charged) for r in records] == [("client_disconnected", True)]


async def test_a_draft_that_could_not_be_stored_is_charged_once_the_provider_answered(
    app: FastAPI, client: AsyncClient, factory: Factory, db: AsyncSession
) -> None:
    """The provider answered (and was paid), then storing the result failed: the settlement
    that failed leaves nothing, the one after it charges the tokens, once."""
    operator = await factory.operator_key()
    commune = await factory.commune()
    agent = await factory.key(commune)
    await set_quotas(
        client, operator, commune, [{"metric": "tokens", "period": "day", "limit": 100_000}]
    )
    call = await _reserved_call(
        app, agent, "bulletin_article", Estimate(prompt_tokens=100, output_tokens=500)
    )
    completion = await call.complete([{"role": "user", "content": "Rédige une phrase."}])

    async def storing_fails(session: AsyncSession) -> None:
        raise RuntimeError("the draft could not be stored")

    with pytest.raises(RuntimeError):
        await call.settle(storing_fails)
    await call.close(RuntimeError("the block ends with the error"))
    tokens = await counter(db, commune, "tokens", "day")
    assert tokens is not None
    assert (tokens.used, tokens.reserved) == (Decimal(completion.total_tokens), Decimal(0))
    records = (
        await db.scalars(select(UsageRecord).where(UsageRecord.organization_id == commune.id))
    ).all()
    assert [(r.outcome, r.charged, r.error_code) for r in records] == [
        ("failure", True, "internal_error")
    ]
