"""Shared by the benchmarks that compare two in-process applications: a fresh database with
an EPCI, its commune and an agent key (made with the CLI), a fake provider in its own
process, and interleaved timings so both applications see the same machine."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from plume.calls.context import CallOutcome, StoredResponse
from plume.calls.settlement import Settlement
from plume.calls.unit import ProviderCall
from plume.db import enter_tenant_context
from tests.support.database import DatabaseServer
from tests.support.factories import fresh_insee, fresh_siren
from tests.support.processes import run_plume, wait_until_ready
from tests.support.servers import free_port
from tests.support.settings import TEST_SECRET

ROOT = Path(__file__).resolve().parents[2]
GROUP = "rapide"
CHAT = {"model": GROUP, "messages": [{"role": "user", "content": "Rédige une phrase de test."}]}


@dataclass(frozen=True)
class Setup:
    database_url: str
    models_file: Path
    operator_key: str
    agent_key: str
    commune_id: str
    epci_id: str
    # The fake provider's OpenAI-compatible base URL.
    provider_base: str


@contextmanager
def bench_setup(database_server: DatabaseServer, tmp: Path) -> Iterator[Setup]:
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
        [sys.executable, "-m", "tests.support.providers", str(provider_port)],
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
            *("orgs", "create", "--kind", "commune", "--name", "Commune de mesure"),
            *("--insee-code", insee, "--parent", siren),
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
            provider_base=f"http://127.0.0.1:{provider_port}/v1",
        )
    finally:
        provider.terminate()
        provider.wait(timeout=30)


@asynccontextmanager
async def serving(apps: dict[str, FastAPI]) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    """A client per application, each application started (lifespan) and stopped."""
    async with AsyncExitStack() as stack:
        clients: dict[str, httpx.AsyncClient] = {}
        for name, app in apps.items():
            await stack.enter_async_context(app.router.lifespan_context(app))
            clients[name] = await stack.enter_async_context(
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app), base_url="http://plume.test", timeout=30
                )
            )
        yield clients


async def interleaved(
    call: Callable[[str], Awaitable[None]], names: tuple[str, str], warm_up: int, samples: int
) -> dict[str, list[float]]:
    """Time `samples` calls of each, alternating A, B, A, B… then B, A, B, A… so that
    neither always goes first; after `warm_up` untimed calls of each."""
    for _ in range(warm_up):
        for name in names:
            await call(name)
    timings: dict[str, list[float]] = {name: [] for name in names}
    for index in range(2 * samples):
        order = names if index < samples else (names[1], names[0])
        name = order[index % 2]
        started = time.perf_counter()
        await call(name)
        timings[name].append(time.perf_counter() - started)
    return timings


def ms(samples: list[float], quantile: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(quantile * len(ordered)))] * 1000


def report(
    title: str, what: str, budget_ms: float, with_: list[float], without: list[float]
) -> None:
    print(f"\n== {title} ==")
    for label, samples in ((f"with {what}   ", with_), (f"without {what}", without)):
        print(
            f"  {label}  p50 {ms(samples, 0.5):7.2f} ms   p99 {ms(samples, 0.99):7.2f} ms"
            f"   mean {statistics.mean(samples) * 1000:7.2f} ms"
        )
    print(
        f"  {what} adds {ms(with_, 0.5) - ms(without, 0.5):.2f} ms p50, "
        f"{ms(with_, 0.99) - ms(without, 0.99):.2f} ms p99 (budget: {budget_ms:g} ms p50)"
    )
    # The samples were taken in adjacent pairs (see `interleaved`): the median of the pairs'
    # differences is steadier than the difference of the medians when the machine's speed
    # drifts during the run.
    paired = [a - b for a, b in zip(with_, without, strict=True)]
    print(f"  median of the differences between adjacent requests: {ms(paired, 0.5):.2f} ms")


# What the benchmarks compare with: the settlement with one of its parts taken out. Test
# code only: production has no such mode.


class WithoutQuotas(Settlement):
    """Enters the tenant context without reserving (nothing held, nothing to settle)."""

    async def reserve(self, session: AsyncSession, call: ProviderCall) -> None:
        await enter_tenant_context(session, call.principal.scope)


_USAGE_ONLY = text(
    "INSERT INTO usage_records (id, organization_id, api_key_id, request_id, kind,"
    " model_group, provider, model, outcome, error_code, prompt_tokens, completion_tokens,"
    " cost_eur, latency_ms, ttft_ms, fallbacks, energy_kwh, gwp_kgco2eq, charged)"
    " VALUES (:id, :organization_id, :api_key_id, :request_id, :kind, :model_group,"
    " :provider, :model, :outcome, :error_code, :prompt_tokens, :completion_tokens,"
    " :cost_eur, :latency_ms, :ttft_ms, :fallbacks, :energy_kwh, :gwp_kgco2eq, :charged)"
)


class WithoutAudit(Settlement):
    """Writes the usage record alone (the benchmark's commune has no quotas), with a
    literal statement as the settlement's own, so that only the audit entry differs."""

    async def write(
        self,
        session: AsyncSession,
        call: ProviderCall,
        outcome: CallOutcome,
        answer: StoredResponse | None,
    ) -> None:
        assert call.reservation_id is None
        row = self.usage_row(call, outcome)
        await session.execute(
            _USAGE_ONLY, {name: getattr(row, name) for name in row.__dataclass_fields__}
        )


def replace_settlement(app: FastAPI, variant: type[Settlement]) -> None:
    """Swap a started application's settlement for a benchmark variant of it."""
    current: Settlement = app.state.provider_calls.settlement
    replacement = variant.__new__(variant)
    replacement.__dict__.update(current.__dict__)
    app.state.provider_calls.settlement = replacement
