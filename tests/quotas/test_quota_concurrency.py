"""Quotas under real concurrency: `plume serve --workers 2` against a slow fake provider,
many requests fired at once, and the ledger checked in PostgreSQL afterwards.

Exactly as many requests succeed as the quota allows, whichever worker serves them; the
counters hold what the usage record says was used, with nothing left reserved; refused
requests never reach the provider and leave no usage row.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.support.clients import bearer
from tests.support.database import DatabaseServer
from tests.support.factories import fresh_insee, fresh_siren
from tests.support.processes import PLUME, run_plume, wait_until_ready
from tests.support.servers import free_port
from tests.support.settings import TEST_SECRET

# Slow lane: `plume serve --workers 2` and the fake provider as subprocesses.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
# Long enough for the 40 requests of a burst to overlap at the provider.
SLOW_SECONDS = 0.3
GROUP = "lent"
LIMIT = 10
BURST = 40
# Generous: kept so that the tokens and cost counters exist, never the one that refuses.
TOKENS_PER_DAY = 10_000_000
COST_PER_MONTH = 1000

CHAT = {"model": GROUP, "messages": [{"role": "user", "content": "Bonjour"}]}
DRAFT = {
    "kind": "bulletin_article",
    "subject": "Repair café",
    "key_points": ["samedi 10 h", "salle des fêtes"],
}

# The fake provider of tests.support.providers, its `slow` model answering after SLOW_SECONDS.
_PROVIDER = f"""
import sys
import uvicorn
from tests.support.providers import FakeProvider

provider = FakeProvider(slow_seconds={SLOW_SECONDS})
uvicorn.run(provider.app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning",
            lifespan="off")
"""


@dataclass(frozen=True)
class Stack:
    base_url: str
    operator_key: str
    # For psycopg: the superuser's URL, which row-level security does not filter.
    database_url: str


@pytest.fixture(scope="module")
def stack(
    database_server: DatabaseServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("quota-concurrency")
    database_url = database_server.create()
    provider_port, plume_port = free_port(), free_port()
    models = tmp / "models.yaml"
    models.write_text(
        "model_groups:\n"
        f"  - name: {GROUP}\n"
        "    default: true\n"
        "    deployments:\n"
        "      - model: openai/slow\n"
        f"        api_base: http://127.0.0.1:{provider_port}/v1\n"
        "        hosting: fr\n"
        "        price_per_million_tokens: {input: 0.1, output: 0.3}\n"
    )
    env = {
        **os.environ,
        "PLUME_ENV": "production",
        "PLUME_METRICS_TOKEN": "metrics-token-for-the-test",
        "PLUME_DATABASE_URL": database_url,
        "PLUME_SECRET_KEY": TEST_SECRET,
        "PLUME_MODELS_FILE": str(models),
        "PLUME_DB_POOL_SIZE": "20",
        "PLUME_STATE_DIR": str(tmp),
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    provider = subprocess.Popen(
        [sys.executable, "-c", _PROVIDER, str(provider_port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    log = (tmp / "plume.log").open("wb")
    plume = subprocess.Popen(
        [PLUME, "serve", "--port", str(plume_port), "--workers", "2"],
        env=env,
        stdout=log,
        stderr=log,
    )
    try:
        # Organisations and keys go through the admin API: one CLI call for the first key.
        operator_key = run_plume(env, "bootstrap")
        wait_until_ready(f"http://127.0.0.1:{provider_port}/v1/models", provider)
        try:
            wait_until_ready(f"http://127.0.0.1:{plume_port}/readyz", plume)
        except AssertionError as error:
            log.flush()
            tail = (tmp / "plume.log").read_text(errors="replace")[-3000:]
            raise AssertionError(f"{error}\n--- plume serve's log (end) ---\n{tail}") from None
        yield Stack(
            base_url=f"http://127.0.0.1:{plume_port}",
            operator_key=operator_key,
            database_url=database_url.replace("postgresql+psycopg://", "postgresql://", 1),
        )
    finally:
        for process in (plume, provider):
            process.terminate()
            process.wait(timeout=30)
        log.close()


@pytest.fixture
async def http(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    limits = httpx.Limits(max_connections=BURST * 2, max_keepalive_connections=BURST * 2)
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60, limits=limits) as client:
        yield client


async def _organization(
    http: httpx.AsyncClient, stack: Stack, kind: str, parent: str | None = None
) -> str:
    body: dict[str, Any] = {"kind": kind, "name": f"Concurrence {kind} {uuid.uuid4().hex[:6]}"}
    if kind == "epci":
        body["siren"] = fresh_siren()
    else:
        body["insee_code"] = fresh_insee()
    if parent is not None:
        body["parent_id"] = parent
    response = await http.post(
        "/v1/admin/organizations", json=body, headers=bearer(stack.operator_key)
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def _agent_key(http: httpx.AsyncClient, stack: Stack, organization_id: str) -> str:
    response = await http.post(
        f"/v1/admin/organizations/{organization_id}/api-keys",
        json={"name": "concurrence", "role": "agent"},
        headers=bearer(stack.operator_key),
    )
    assert response.status_code == 201, response.text
    key = response.json()["key"]
    # The key acts for the organisation it was minted for.
    own = await http.get("/v1/organization", headers=bearer(key))
    assert own.status_code == 200, own.text
    assert own.json()["id"] == organization_id
    return str(key)


async def _set_quotas(http: httpx.AsyncClient, stack: Stack, organization_id: str) -> None:
    items = [
        {"metric": "requests", "period": "day", "limit": LIMIT},
        {"metric": "tokens", "period": "day", "limit": TOKENS_PER_DAY},
        {"metric": "cost_eur", "period": "month", "limit": COST_PER_MONTH},
    ]
    response = await http.put(
        f"/v1/admin/organizations/{organization_id}/quotas",
        json=items,
        headers=bearer(stack.operator_key),
    )
    assert response.status_code == 200, response.text
    assert len(response.json()["items"]) == len(items)


async def _burst(
    http: httpx.AsyncClient, requests: list[tuple[str, str, dict[str, Any]]]
) -> list[httpx.Response]:
    """Send every (key, path, body) at once."""
    gate = asyncio.Event()

    async def send(key: str, path: str, body: dict[str, Any]) -> httpx.Response:
        await gate.wait()
        return await http.post(path, json=body, headers=bearer(key))

    tasks = [asyncio.create_task(send(*request)) for request in requests]
    await asyncio.sleep(0)
    gate.set()
    return list(await asyncio.gather(*tasks))


def _check_answers(responses: list[httpx.Response], success: int, chat: bool) -> None:
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {success: LIMIT, 429: len(responses) - LIMIT}, [
        (r.status_code, r.text[:200]) for r in responses if r.status_code not in (success, 429)
    ]
    for refused in (r for r in responses if r.status_code == 429):
        body = refused.json()
        if chat:
            # The OpenAI-compatible route answers errors in OpenAI's shape.
            assert body["error"]["code"] == "quota_exceeded", body
        else:
            assert refused.headers["content-type"].startswith("application/problem+json")
            assert body["code"] == "quota_exceeded", body
        assert int(refused.headers["Retry-After"]) >= 1
    accepted = [r for r in responses if r.status_code == success]
    # The reservations were serialised on the counter: each success saw one more taken.
    assert sorted(int(r.headers["RateLimit-Remaining"]) for r in accepted) == list(range(LIMIT))
    assert {r.headers["RateLimit-Limit"] for r in accepted} == {str(LIMIT)}


def _check_ledger(stack: Stack, quota_holder: str, requesters: list[str], success: int) -> None:
    """The quota holder's day counters match the requesters' usage record, with nothing
    left reserved; no reservation is left over; one usage row per successful request."""
    holder = uuid.UUID(quota_holder)
    ids = [uuid.UUID(i) for i in requesters]
    with psycopg.connect(stack.database_url) as db:
        counters = db.execute(
            "SELECT metric, period, used, reserved FROM quota_counters"
            " WHERE organization_id = %s ORDER BY metric, period",
            (holder,),
        ).fetchall()
        usage = db.execute(
            "SELECT outcome, count(*),"
            " coalesce(sum(prompt_tokens + completion_tokens) FILTER (WHERE charged), 0),"
            " coalesce(sum(cost_eur) FILTER (WHERE charged), 0)"
            " FROM usage_records WHERE organization_id = ANY(%s) GROUP BY outcome",
            (ids,),
        ).fetchall()
        reservations = db.execute(
            "SELECT count(*) FROM quota_reservations WHERE organization_id = ANY(%s)",
            ([*ids, holder],),
        ).fetchone()
        requester_counters = db.execute(
            "SELECT count(*) FROM quota_counters WHERE organization_id = ANY(%s)",
            ([i for i in ids if i != holder],),
        ).fetchone()
    assert [(outcome, count) for outcome, count, _, _ in usage] == [("success", success)], usage
    _, _, tokens, cost = usage[0]
    assert tokens > 0
    by_key = {(metric, period): (used, reserved) for metric, period, used, reserved in counters}
    # One row per quota (the ledger's view).
    assert len(by_key) == len(counters) == 3, counters
    assert by_key[("requests", "day")] == (Decimal(success), Decimal(0))
    assert by_key[("tokens", "day")] == (Decimal(tokens), Decimal(0))
    assert by_key[("cost_eur", "month")] == (Decimal(cost), Decimal(0))
    assert reservations == (0,)
    # Organisations without quotas of their own keep no ledger.
    assert requester_counters == (0,)


async def test_a_commune_gets_exactly_its_quota_of_concurrent_chat_completions(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    commune = await _organization(http, stack, "commune")
    await _set_quotas(http, stack, commune)
    key = await _agent_key(http, stack, commune)

    responses = await _burst(http, [(key, "/v1/chat/completions", CHAT)] * BURST)

    _check_answers(responses, 200, chat=True)
    _check_ledger(stack, commune, [commune], LIMIT)


async def test_a_commune_gets_exactly_its_quota_of_concurrent_drafts(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    commune = await _organization(http, stack, "commune")
    await _set_quotas(http, stack, commune)
    key = await _agent_key(http, stack, commune)

    responses = await _burst(http, [(key, "/v1/drafts", DRAFT)] * BURST)

    _check_answers(responses, 201, chat=False)
    _check_ledger(stack, commune, [commune], LIMIT)


async def test_two_communes_share_their_epcis_quota_exactly(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    epci = await _organization(http, stack, "epci")
    await _set_quotas(http, stack, epci)
    first = await _organization(http, stack, "commune", parent=epci)
    second = await _organization(http, stack, "commune", parent=epci)
    keys = [await _agent_key(http, stack, first), await _agent_key(http, stack, second)]

    # Interleaved, so both communes are in flight at the same time.
    requests = [(keys[i % 2], "/v1/drafts", DRAFT) for i in range(BURST)]
    responses = await _burst(http, requests)

    _check_answers(responses, 201, chat=False)
    _check_ledger(stack, epci, [first, second], LIMIT)
