"""Benchmark: what quota enforcement adds to a request.

Two in-process applications on the same database and the same fake provider, one with the
quota hook and one without (`create_app(enforce_quotas=False)`), answer the same chat
completion for a commune that has quotas, as has its EPCI (so a reservation touches two
levels). Requests alternate between the two, so both see the same machine, database and
provider; the difference of their latencies is the cost of reserving and settling. Prints
the figures (the budget is printed, not asserted); `make bench` runs it.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import httpx
import psycopg
import pytest

from plume.app import create_app
from tests.conftest import TEST_SECRET, DatabaseServer, make_settings
from tests.factories import fresh_insee, fresh_siren
from tests.fake_provider import free_port
from tests.processes import run_plume, wait_until_ready

pytestmark = pytest.mark.bench

ROOT = Path(__file__).resolve().parents[2]
GROUP = "rapide"
BODY = {"model": GROUP, "messages": [{"role": "user", "content": "Rédige une phrase de test."}]}
WARM_UP = 30
SAMPLES = 400
QUOTAS = [
    {"metric": "requests", "period": "day", "limit": 1_000_000},
    {"metric": "tokens", "period": "day", "limit": 10**9},
    {"metric": "cost_eur", "period": "month", "limit": 10_000},
]


@dataclass(frozen=True)
class Setup:
    database_url: str
    models_file: Path
    operator_key: str
    agent_key: str
    commune_id: str
    epci_id: str


@pytest.fixture(scope="module")
def setup(
    database_server: DatabaseServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Setup]:
    """A fresh database with an EPCI, its commune and an agent key, made with the CLI, and
    a fake provider (its fast model `okfast`) in its own process."""
    tmp = tmp_path_factory.mktemp("quota-bench")
    database_url = database_server.create()
    provider_port = free_port()
    models = tmp / "models.yaml"
    models.write_text(
        "model_groups:\n"
        f"  - name: {GROUP}\n"
        "    default: true\n"
        "    deployments:\n"
        "      - model: openai/okfast\n"
        f"        api_base: http://127.0.0.1:{provider_port}/v1\n"
        "        hosting: fr\n"
        "        price_per_million_tokens: {input: 0.1, output: 0.3}\n"
    )
    env = {
        **os.environ,
        "PLUME_DATABASE_URL": database_url,
        "PLUME_SECRET_KEY": TEST_SECRET,
        "PLUME_MODELS_FILE": str(models),
        "PLUME_STATE_DIR": str(tmp),
    }
    provider = subprocess.Popen(
        [sys.executable, "-m", "tests.fake_provider", str(provider_port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        operator_key = run_plume(env, "bootstrap")
        siren, insee = fresh_siren(), fresh_insee()
        epci = run_plume(
            env, "orgs", "create", "--kind", "epci", "--name", "EPCI de mesure", "--siren", siren
        )
        commune = run_plume(
            env,
            "orgs",
            "create",
            "--kind",
            "commune",
            "--name",
            "Commune de mesure",
            "--insee-code",
            insee,
            "--parent",
            siren,
        )
        agent_key = run_plume(
            env, "keys", "create", "--organization", insee, "--role", "agent", "--name", "bench"
        )
        wait_until_ready(f"http://127.0.0.1:{provider_port}/v1/models", provider)
        yield Setup(
            database_url=database_url,
            models_file=models,
            operator_key=operator_key,
            agent_key=agent_key,
            # `orgs create` prints: id, kind, slug, name (tab-separated).
            commune_id=commune.split("\t")[0],
            epci_id=epci.split("\t")[0],
        )
    finally:
        provider.terminate()
        provider.wait(timeout=30)


def _ms(samples: list[float], quantile: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(quantile * len(ordered)))] * 1000


def _counters(database_url: str, organization_id: str) -> dict[tuple[str, str], Decimal]:
    """Each current counter's used + reserved."""
    url = database_url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(url) as db:
        rows = db.execute(
            "SELECT metric, period, used, reserved FROM quota_counters WHERE organization_id = %s",
            (uuid.UUID(organization_id),),
        ).fetchall()
    assert all(reserved == 0 for _, _, _, reserved in rows), rows
    return {(metric, period): used for metric, period, used, _ in rows}


def _usage_rows(database_url: str, organization_id: str) -> int:
    url = database_url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(url) as db:
        row = db.execute(
            "SELECT count(*) FROM usage_records WHERE organization_id = %s AND outcome = 'success'",
            (uuid.UUID(organization_id),),
        ).fetchone()
    assert row is not None
    return int(row[0])


async def test_quota_overhead(setup: Setup) -> None:
    settings = make_settings(setup.database_url, models_file=setup.models_file)
    enforced = create_app(settings, enforce_quotas=True)
    free = create_app(settings, enforce_quotas=False)
    operator = {"Authorization": f"Bearer {setup.operator_key}"}
    agent = {"Authorization": f"Bearer {setup.agent_key}"}

    async with AsyncExitStack() as stack:
        clients: dict[str, httpx.AsyncClient] = {}
        for name, app in (("enforced", enforced), ("free", free)):
            await stack.enter_async_context(app.router.lifespan_context(app))
            clients[name] = await stack.enter_async_context(
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app),
                    base_url="http://plume.test",
                    timeout=30,
                )
            )
        for organization_id in (setup.commune_id, setup.epci_id):
            response = await clients["enforced"].put(
                f"/v1/admin/organizations/{organization_id}/quotas", json=QUOTAS, headers=operator
            )
            assert response.status_code == 200, response.text

        async def call(name: str) -> float:
            started = time.perf_counter()
            response = await clients[name].post("/v1/chat/completions", json=BODY, headers=agent)
            elapsed = time.perf_counter() - started
            assert response.status_code == 200, response.text
            # Only the enforcing app knows the quotas the request counted against.
            assert ("RateLimit-Limit" in response.headers) == (name == "enforced")
            return elapsed

        for _ in range(WARM_UP):  # connections, LiteLLM's first calls, plans
            await call("enforced")
            await call("free")
        before = {
            organization_id: _counters(setup.database_url, organization_id)
            for organization_id in (setup.commune_id, setup.epci_id)
        }
        timings: dict[str, list[float]] = {"enforced": [], "free": []}
        for index in range(2 * SAMPLES):
            # A, B, A, B… then B, A, B, A…: neither always goes first.
            order = ("enforced", "free") if index < SAMPLES else ("free", "enforced")
            name = order[index % 2]
            timings[name].append(await call(name))

    with_quotas, without = timings["enforced"], timings["free"]
    p50_added = _ms(with_quotas, 0.5) - _ms(without, 0.5)
    p99_added = _ms(with_quotas, 0.99) - _ms(without, 0.99)
    print("\n== Quota enforcement overhead (in-process apps, fake provider on loopback) ==")
    print(f"{SAMPLES} sequential chat completions per app, interleaved; quotas on 2 levels")
    for label, samples in (("with quotas   ", with_quotas), ("without quotas", without)):
        print(
            f"  {label}  p50 {_ms(samples, 0.5):7.2f} ms   p99 {_ms(samples, 0.99):7.2f} ms"
            f"   mean {statistics.mean(samples) * 1000:7.2f} ms"
        )
    print(
        f"  quota enforcement adds {p50_added:.2f} ms p50, {p99_added:.2f} ms p99"
        " (budget: 1 ms p50)"
    )

    assert len(with_quotas) == len(without) == SAMPLES
    # The counters moved by the enforcing app's requests only, at both levels.
    for organization_id in (setup.commune_id, setup.epci_id):
        after = _counters(setup.database_url, organization_id)
        assert after[("requests", "day")] - before[organization_id][("requests", "day")] == SAMPLES
        assert after[("requests", "day")] == SAMPLES + WARM_UP
        assert after[("tokens", "day")] > before[organization_id][("tokens", "day")]
    # Both apps keep the usage record.
    assert _usage_rows(setup.database_url, setup.commune_id) == 2 * (SAMPLES + WARM_UP)
