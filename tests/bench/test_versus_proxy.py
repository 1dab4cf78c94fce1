"""Benchmark: Plume's whole governed path against LiteLLM's own proxy, in the same run.

The same fake OpenAI-compatible provider (0 ms; 50 ms for the scale rows) behind `plume serve`
— an API key, quotas on a commune and on its EPCI, the audit chain, usage and energy — and
behind `litellm --config …` (the pinned `litellm[proxy]` of requirements/bench-proxy.in, in
.venv-proxy, no database). Rounds alternate between the two, so both see the same machine
state; the table gives the ratio Plume / proxy, measured and not remembered. Prints the
table and writes it to docs/bench/versus-proxy.md; `make bench` runs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import statistics
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from tests.bench.inprocess import Setup, bench_setup
from tests.bench.measure import (
    Samples,
    Target,
    concurrent,
    cpu_seconds,
    process_tree,
    pss_mib,
    sequential,
)
from tests.support.database import DatabaseServer
from tests.support.processes import PLUME, wait_until_ready
from tests.support.servers import free_port
from tests.support.settings import TEST_SECRET

pytestmark = pytest.mark.bench

ROOT = Path(__file__).resolve().parents[2]
PROXY = ROOT / ".venv-proxy" / "bin" / "litellm"
RESULTS = ROOT / "docs" / "bench" / "versus-proxy.md"
# A directory: Plume's one-worker server runs under `py-spy record` and its samples are written
# there (tests/bench/profile.py splits them by area).
PROFILE = os.environ.get("PLUME_BENCH_PROFILE")
PY_SPY = ROOT / ".venv" / "bin" / "py-spy"
MASTER_KEY = "sk-bench-proxy"
ROUNDS = int(os.environ.get("PLUME_BENCH_ROUNDS", "3"))
SEQUENTIAL = 150
STREAMS = 60
CONCURRENCY = 50
CONCURRENT_TOTAL = 1000
WARM_UP = 50
QUOTAS = [
    {"metric": "requests", "period": "day", "limit": 10_000_000},
    {"metric": "tokens", "period": "day", "limit": 10**10},
    {"metric": "cost_eur", "period": "month", "limit": 100_000},
]
# Model group (Plume) and model name (proxy) → the fake provider's model.
MODELS = {"standard": "ok", "long": "oklong", "wait50": "ok50ms"}


# Requests that failed under load at concurrency 50 and more, by server: printed with the table.
FAILURES: Counter[str] = Counter()


@dataclass(frozen=True)
class Server:
    process: subprocess.Popen[bytes]

    def tree(self) -> list[int]:
        return process_tree(self.process.pid)


def _write_configs(setup: Setup, tmp: Path) -> Path:
    """Plume's routing file (over the one bench_setup wrote) and the proxy's config.yaml."""
    groups, proxy = ["model_groups:"], ["model_list:"]
    for name, model in MODELS.items():
        groups += [
            f"  - name: {name}",
            *(["    default: true"] if name == "standard" else []),
            "    deployments:",
            f"      - model: openai/{model}",
            f"        api_base: {setup.provider_base}",
            "        hosting: fr",
            "        price_per_million_tokens: {input: 0.1, output: 0.3}",
        ]
        proxy += [
            f"  - model_name: {name}",
            "    litellm_params:",
            f"      model: openai/{model}",
            f"      api_base: {setup.provider_base}",
            "      api_key: fake-key",
        ]
    setup.models_file.write_text("\n".join(groups) + "\n")
    proxy += ["general_settings:", f"  master_key: {MASTER_KEY}"]
    config = tmp / "proxy.yaml"
    config.write_text("\n".join(proxy) + "\n")
    return config


def _plume_env(setup: Setup, tmp: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PLUME_ENV": "production",
        "PLUME_METRICS_TOKEN": "metrics-token-for-the-bench",
        "PLUME_DATABASE_URL": setup.database_url,
        "PLUME_SECRET_KEY": TEST_SECRET,
        "PLUME_MODELS_FILE": str(setup.models_file),
        "PLUME_STATE_DIR": str(tmp),
        "PLUME_DB_POOL_SIZE": "20",
    }


@contextmanager
def _started(argv: list[str], env: dict[str, str], ready: str, log: Path) -> Iterator[Server]:
    with log.open("wb") as output:
        process = subprocess.Popen(argv, env=env, stdout=output, stderr=output)
        try:
            wait_until_ready(ready, process, timeout=180)
            yield Server(process)
        except BaseException:
            print(f"\n--- the end of {log.name} ---\n" + log.read_text(errors="replace")[-3000:])
            raise
        finally:
            tree = process_tree(process.pid)
            # py-spy writes its samples on Ctrl-C, and stops the server it started.
            process.send_signal(signal.SIGINT if argv[0] == str(PY_SPY) else signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                for pid in tree:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                process.wait(timeout=10)


@dataclass(frozen=True)
class Stack:
    setup: Setup
    plume_env: dict[str, str]
    proxy_config: Path
    tmp: Path

    @contextmanager
    def plume(self, workers: int) -> Iterator[tuple[Server, Target]]:
        port = free_port()
        argv = [PLUME, "serve", "--port", str(port), "--workers", str(workers)]
        if PROFILE and workers == 1:
            output = Path(PROFILE) / f"plume-{datetime.now(UTC):%H%M%S}.txt"
            argv = [str(PY_SPY), "record", "--format", "raw", "--nonblocking"]
            argv += ["--rate", "200", "-o", str(output), "--", PLUME, "serve"]
            argv += ["--port", str(port), "--workers", "1"]
        log = self.tmp / f"plume-{workers}.log"
        with _started(argv, self.plume_env, f"http://127.0.0.1:{port}/healthz", log) as server:
            headers = {"Authorization": f"Bearer {self.setup.agent_key}"}
            yield server, Target(f"http://127.0.0.1:{port}/v1", headers, "standard", "long")

    @contextmanager
    def proxy(self, workers: int) -> Iterator[tuple[Server, Target]]:
        port = free_port()
        argv = [str(PROXY), "--config", str(self.proxy_config), "--port", str(port)]
        argv += ["--num_workers", str(workers)]
        # Its workers import LiteLLM before they answer uvicorn's health check: on a busy
        # machine, past the 5 s default, and uvicorn would respawn them for ever.
        argv += ["--timeout_worker_healthcheck", "120"]
        env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR"}
        log = self.tmp / f"proxy-{workers}.log"
        ready = f"http://127.0.0.1:{port}/health/liveliness"
        with _started(argv, env, ready, log) as server:
            headers = {"Authorization": f"Bearer {MASTER_KEY}"}
            yield server, Target(f"http://127.0.0.1:{port}/v1", headers, "standard", "long")


@pytest.fixture(scope="module")
def stack(database_server: DatabaseServer) -> Iterator[Stack]:
    if not PROXY.exists():
        pytest.skip("LiteLLM's proxy is not installed: `make bench` installs it (.venv-proxy)")
    # Not pytest's tmp_path: pytest runs of other checkouts on the machine prune its base
    # directories, and the servers read their files for minutes.
    with ExitStack() as held:
        tmp = Path(held.enter_context(tempfile.TemporaryDirectory(prefix="plume-bench-")))
        setup = held.enter_context(bench_setup(database_server, tmp))
        config = _write_configs(setup, tmp)
        ready = Stack(setup, _plume_env(setup, tmp), config, tmp)
        with ready.plume(1) as (_, plume):
            operator = {"Authorization": f"Bearer {setup.operator_key}"}
            admin = plume.base.removesuffix("/v1")
            for organization_id in (setup.commune_id, setup.epci_id):
                response = httpx.put(
                    f"{admin}/v1/admin/organizations/{organization_id}/quotas",
                    json=QUOTAS,
                    headers=operator,
                )
                assert response.status_code == 200, response.text
        yield ready


async def _round(server: Server, target: Target, samples: Samples) -> None:
    samples.latencies += await sequential(target, SEQUENTIAL)
    samples.fresh += await sequential(target, SEQUENTIAL, fresh=True)
    samples.streams += await sequential(target, STREAMS, stream=True)
    before = cpu_seconds(server.tree())
    rate, failures = await concurrent(target, CONCURRENCY, CONCURRENT_TOTAL)
    samples.rates.append(rate)
    samples.failures += failures
    samples.cpu_per_request.append((cpu_seconds(server.tree()) - before) / CONCURRENT_TOTAL)


def _row(label: str, proxy: float, plume: float, unit: str, digits: int = 1) -> str:
    return (
        f"| {label} | {proxy:.{digits}f} {unit} | {plume:.{digits}f} {unit} | {plume / proxy:.2f} |"
    )


def _per_round(name: str, proxy: list[float], plume: list[float]) -> str:
    """The ratio in each round: both gateways measured minutes apart, the spread shows what
    the machine's own variations do to one round's figure."""
    ratios = ", ".join(f"{b / a:.2f}" for a, b in zip(proxy, plume, strict=True))
    return f"{name}: {ratios}"


def _record(title: str, rows: list[str], rounds: list[str] | None = None) -> None:
    table = [f"### {title}", "", "| | LiteLLM proxy | Plume | ratio |", "|---|---|---|---|", *rows]
    if rounds:
        table += ["", "Ratio in each round: " + "; ".join(rounds) + "."]
    failed = ", ".join(f"{name} {count}" for name, count in sorted(FAILURES.items()) if count)
    table += ["", f"Failed requests under load: {failed or 'none'}."]
    FAILURES.clear()
    text = "\n".join(table) + "\n"
    print("\n" + text)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with RESULTS.open("a") as file:
        file.write(text + "\n")


def test_versus_proxy_one_worker(stack: Stack) -> None:
    """The issue's table: one worker each, interleaved rounds, 0 ms provider."""
    direct = Target(stack.setup.provider_base, {}, "ok", "oklong")
    figures = {"proxy": Samples(), "plume": Samples()}
    with ExitStack() as started:
        servers = {
            "proxy": started.enter_context(stack.proxy(1)),
            "plume": started.enter_context(stack.plume(1)),
        }
        time.sleep(2)
        idle_start = {name: pss_mib(server.tree()) for name, (server, _) in servers.items()}
        baseline = Samples()

        async def run() -> None:
            # Not measured: each server opens its connections (to the provider, and Plume's
            # to PostgreSQL) and fills its caches before the first round, so that the first
            # round is not the only one to pay for them.
            for _, target in servers.values():
                await sequential(target, WARM_UP)
                await concurrent(target, CONCURRENCY, WARM_UP * 4)
            for index in range(ROUNDS):
                baseline.latencies += await sequential(direct, SEQUENTIAL)
                baseline.fresh += await sequential(direct, SEQUENTIAL, fresh=True)
                baseline.streams += await sequential(direct, STREAMS, stream=True)
                order = ("proxy", "plume") if index % 2 == 0 else ("plume", "proxy")
                for name in order:
                    server, target = servers[name]
                    await _round(server, target, figures[name])

        asyncio.run(run())
        time.sleep(2)
        idle_after = {name: pss_mib(server.tree()) for name, (server, _) in servers.items()}

    proxy, plume = figures["proxy"], figures["plume"]
    FAILURES.update({name: samples.failures for name, samples in figures.items()})
    added = {
        name: (
            samples.p50_ms("latencies") - baseline.p50_ms("latencies"),
            samples.p50_ms("streams") - baseline.p50_ms("streams"),
            samples.p50_ms("fresh") - baseline.p50_ms("fresh"),
        )
        for name, samples in figures.items()
    }
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    _record(
        f"One worker each, 0 ms provider, {ROUNDS} interleaved rounds ({stamp})",
        [
            _row("added p50 at concurrency 1", added["proxy"][0], added["plume"][0], "ms", 2),
            _row(
                "the same, a new prompt each request",
                added["proxy"][2],
                added["plume"][2],
                "ms",
                2,
            ),
            _row(
                f"requests/s at concurrency {CONCURRENCY}",
                statistics.median(proxy.rates),
                statistics.median(plume.rates),
                "",
            ),
            _row(
                "server CPU per request (Plume: without PostgreSQL)",
                statistics.median(proxy.cpu_per_request) * 1000,
                statistics.median(plume.cpu_per_request) * 1000,
                "ms",
            ),
            _row("stream of 36 chunks, added p50", added["proxy"][1], added["plume"][1], "ms"),
            _row(
                "memory (PSS) idle after start", idle_start["proxy"], idle_start["plume"], "MB", 0
            ),
            _row(
                "memory (PSS) idle after the run", idle_after["proxy"], idle_after["plume"], "MB", 0
            ),
        ],
        [
            _per_round("requests/s", proxy.rates, plume.rates),
            _per_round("CPU per request", proxy.cpu_per_request, plume.cpu_per_request),
        ],
    )
    assert plume.failures == 0


async def _scale_rounds(
    servers: dict[str, tuple[Server, Target]], concurrency: int
) -> dict[str, list[float]]:
    """Requests/s of each server, interleaved rounds, the 50 ms provider's model."""
    samples: dict[str, list[float]] = {"proxy": [], "plume": []}
    for index in range(ROUNDS):
        order = ("proxy", "plume") if index % 2 == 0 else ("plume", "proxy")
        for name in order:
            _, target = servers[name]
            slow = Target(target.base, target.headers, "wait50", "long")
            rate, failures = await concurrent(slow, concurrency, CONCURRENT_TOTAL)
            samples[name].append(rate)
            FAILURES[name] += failures
    return samples


def test_versus_proxy_scale(stack: Stack) -> None:
    """A 50 ms provider (the event loop, not the CPU, is the limit): requests/s per worker
    at concurrency 50 per worker with one and with two workers, and memory per worker with
    two (PSS: what the workers share counts once)."""
    rates: dict[tuple[str, int], float] = {}
    memory: dict[str, float] = {}
    for workers in (1, 2):
        with ExitStack() as started:
            servers = {
                "proxy": started.enter_context(stack.proxy(workers)),
                "plume": started.enter_context(stack.plume(workers)),
            }
            samples = asyncio.run(_scale_rounds(servers, CONCURRENCY * workers))
            time.sleep(2)
            for name, (server, _) in servers.items():
                rates[(name, workers)] = statistics.median(samples[name])
                if workers == 2:
                    memory[name] = pss_mib(server.tree()) / workers
    rows = [
        _row(
            f"{workers} worker(s), concurrency {CONCURRENCY * workers}: requests/s per worker",
            rates[("proxy", workers)] / workers,
            rates[("plume", workers)] / workers,
            "",
        )
        for workers in (1, 2)
    ]
    rows.append(
        _row("memory (PSS) per worker, two workers", memory["proxy"], memory["plume"], "MB", 0)
    )
    _record(f"Scale: 50 ms provider, {ROUNDS} interleaved rounds", rows)
    assert rates[("plume", 2)] > 0
