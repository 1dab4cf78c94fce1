"""Benchmark: the latency Plume adds in front of a provider, and its throughput.

Runs a fake OpenAI-compatible provider and `plume serve` as separate processes, then
compares the same chat completion sent directly to the provider and through Plume (API key
check, policy, LiteLLM Router, transactions), at concurrency 1 and 50. Prints the figures;
`make bench` runs it.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.database import DatabaseServer
from tests.support.factories import fresh_insee
from tests.support.processes import PLUME, run_plume, wait_until_ready
from tests.support.servers import free_port
from tests.support.settings import TEST_SECRET

pytestmark = pytest.mark.bench

ROOT = Path(__file__).resolve().parents[2]
MESSAGES = [{"role": "user", "content": "Rédige une phrase de test."}]
# The provider is asked for its model `ok`; Plume for the group that routes to it.
DIRECT_BODY = {"model": "ok", "messages": MESSAGES}
PLUME_BODY = {"model": "standard", "messages": MESSAGES}
SEQUENTIAL = 300
CONCURRENT = 50
CONCURRENT_TOTAL = 2000


@pytest.fixture(scope="module")
def stack(database_server: DatabaseServer) -> Iterator[tuple[str, str, str]]:
    """(provider base URL, Plume base URL, a commune's key)."""
    database_url = database_server.create()
    provider_port, plume_port = free_port(), free_port()
    provider = subprocess.Popen(
        [sys.executable, "-m", "tests.support.providers", str(provider_port)], cwd=ROOT
    )
    with tempfile.TemporaryDirectory() as tmp:
        models = Path(tmp) / "models.yaml"
        models.write_text(
            "model_groups:\n"
            "  - name: standard\n"
            "    default: true\n"
            "    deployments:\n"
            "      - model: openai/ok\n"
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
        }

        def run(*args: str) -> str:
            return run_plume(env, *args)

        run("bootstrap")
        insee = fresh_insee()
        run(
            "orgs",
            "create",
            "--kind",
            "commune",
            "--name",
            "Commune de mesure",
            "--insee-code",
            insee,
        )
        key = run("keys", "create", "--organization", insee, "--role", "agent", "--name", "bench")
        log = open(Path(tmp) / "plume.log", "wb")  # noqa: SIM115
        plume = subprocess.Popen(
            [PLUME, "serve", "--port", str(plume_port), "--workers", "2"],
            env=env,
            stderr=log,
            stdout=log,
        )
        try:
            wait_until_ready(f"http://127.0.0.1:{provider_port}/v1/models", provider)
            wait_until_ready(f"http://127.0.0.1:{plume_port}/healthz", plume)
            yield (
                f"http://127.0.0.1:{provider_port}/v1",
                f"http://127.0.0.1:{plume_port}/v1",
                key,
            )
        finally:
            for process in (plume, provider):
                process.terminate()
                process.wait(timeout=30)
            log.close()


async def _latencies(
    base: str, headers: dict[str, str], body: dict[str, object], count: int
) -> list[float]:
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as client:
        for _ in range(20):  # warm-up: connections, first LiteLLM call
            (await client.post("/chat/completions", json=body)).raise_for_status()
        samples = []
        for _ in range(count):
            started = time.perf_counter()
            response = await client.post("/chat/completions", json=body)
            samples.append(time.perf_counter() - started)
            response.raise_for_status()
        return samples


async def _throughput(
    base: str, headers: dict[str, str], body: dict[str, object]
) -> tuple[float, list[float]]:
    limits = httpx.Limits(max_connections=CONCURRENT, max_keepalive_connections=CONCURRENT)
    async with httpx.AsyncClient(
        base_url=base, headers=headers, timeout=60, limits=limits
    ) as client:
        queue: asyncio.Queue[int] = asyncio.Queue()
        for index in range(CONCURRENT_TOTAL):
            queue.put_nowait(index)
        samples: list[float] = []

        async def worker() -> None:
            while True:
                try:
                    queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                started = time.perf_counter()
                response = await client.post("/chat/completions", json=body)
                samples.append(time.perf_counter() - started)
                response.raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENT)))
        return CONCURRENT_TOTAL / (time.perf_counter() - started), samples


def _ms(samples: list[float], quantile: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(quantile * len(ordered)))] * 1000


async def test_gateway_overhead(stack: tuple[str, str, str]) -> None:
    provider, plume, key = stack
    auth = {"Authorization": f"Bearer {key}"}
    direct = await _latencies(provider, {}, DIRECT_BODY, SEQUENTIAL)
    through = await _latencies(plume, auth, PLUME_BODY, SEQUENTIAL)
    direct_rps, direct_c50 = await _throughput(provider, {}, DIRECT_BODY)
    plume_rps, plume_c50 = await _throughput(plume, auth, PLUME_BODY)

    added_p50 = statistics.median(through) * 1000 - statistics.median(direct) * 1000
    print("\n== Plume gateway overhead (fake OpenAI-compatible provider on loopback) ==")
    print(f"concurrency 1, {SEQUENTIAL} sequential requests:")
    print(
        f"  direct to provider   p50 {_ms(direct, 0.5):7.2f} ms   p95 {_ms(direct, 0.95):7.2f} ms"
    )
    print(
        f"  through Plume        p50 {_ms(through, 0.5):7.2f} ms   p95 {_ms(through, 0.95):7.2f} ms"
    )
    print(f"  added by Plume       p50 {added_p50:7.2f} ms   (target: <= 12 ms, aim 6 ms)")
    print(f"concurrency {CONCURRENT}, {CONCURRENT_TOTAL} requests:")
    print(f"  direct to provider   {direct_rps:8.1f} req/s   p95 {_ms(direct_c50, 0.95):7.2f} ms")
    print(f"  through Plume        {plume_rps:8.1f} req/s   p95 {_ms(plume_c50, 0.95):7.2f} ms")
    assert len(through) == SEQUENTIAL
    assert plume_rps > 0
