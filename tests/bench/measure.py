"""What the benchmarks against LiteLLM's proxy measure: latencies at concurrency 1 (plain and
streamed), throughput at concurrency N, and a server's process tree — its memory (PSS, from
/proc/PID/smaps_rollup) and the CPU time it spent."""

from __future__ import annotations

import asyncio
import itertools
import os
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants (uvicorn's workers, multiprocessing's helpers)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name, in parentheses, may hold spaces: the fields follow the last ")".
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    tree, pending = [], [pid]
    while pending:
        current = pending.pop()
        tree.append(current)
        pending.extend(children.get(current, []))
    return tree


def pss_mib(pids: list[int]) -> float:
    """The proportional set size of the processes, summed: what they cost the machine, pages
    shared between them counted once."""
    total_kib = 0
    for pid in pids:
        try:
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        for line in rollup.splitlines():
            if line.startswith("Pss:"):
                total_kib += int(line.split()[1])
    return total_kib / 1024


def cpu_seconds(pids: list[int]) -> float:
    """User and system CPU time the processes have spent so far."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / CLOCK_TICKS


@dataclass
class Samples:
    """One system's figures, pooled over the interleaved rounds."""

    latencies: list[float] = field(default_factory=list)
    # Latencies with a prompt never sent before (pseudonymisation's model reads each).
    fresh: list[float] = field(default_factory=list)
    streams: list[float] = field(default_factory=list)
    rates: list[float] = field(default_factory=list)
    cpu_per_request: list[float] = field(default_factory=list)
    failures: int = 0

    def p50_ms(self, name: str) -> float:
        values: list[float] = getattr(self, name)
        return statistics.median(values) * 1000


@dataclass(frozen=True)
class Target:
    """Where to send a chat completion, and as which model."""

    base: str
    headers: dict[str, str]
    model: str
    stream_model: str


def chat_body(model: str, *, stream: bool = False, number: int | None = None) -> dict[str, object]:
    """The benchmark's request; with `number`, a prompt no request sent before (a
    conversation's first message: pseudonymisation's model has not read it yet)."""
    content = "Rédige une phrase de test."
    if number is not None:
        content = (
            f"Rédige la réponse au courrier n° {number} reçu en mairie le {1 + number % 28} "
            "du mois, au sujet du stationnement devant l'école."
        )
    body: dict[str, object] = {
        "model": model,
        "messages": [{"role": "user", "content": content}],
    }
    if stream:
        body["stream"] = True
    return body


_FRESH = itertools.count(1)


async def sequential(
    target: Target, count: int, *, stream: bool = False, fresh: bool = False
) -> list[float]:
    """Latencies of `count` requests one after the other, after a short warm-up; a stream's
    latency runs to its last byte. `fresh`: each request a prompt never sent before."""
    model = target.stream_model if stream else target.model
    body = chat_body(model, stream=stream)
    async with httpx.AsyncClient(
        base_url=target.base, headers=target.headers, timeout=30
    ) as client:

        async def one() -> float:
            started = time.perf_counter()
            if stream:
                async with client.stream("POST", "/chat/completions", json=body) as response:
                    assert response.status_code == 200, await response.aread()
                    async for _ in response.aiter_bytes():
                        pass
            else:
                sent = chat_body(model, number=next(_FRESH)) if fresh else body
                response = await client.post("/chat/completions", json=sent)
                assert response.status_code == 200, response.text
            return time.perf_counter() - started

        for _ in range(10):
            await one()
        return [await one() for _ in range(count)]


async def concurrent(target: Target, concurrency: int, total: int) -> tuple[float, int]:
    """Requests per second with `concurrency` requests in flight, `total` in all, and how
    many of them failed (an error status, or the connection dropped): counted, not raised,
    so that one server's failures under load are reported next to its rate."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    body = chat_body(target.model)
    failures = 0
    async with httpx.AsyncClient(
        base_url=target.base, headers=target.headers, timeout=60, limits=limits
    ) as client:
        remaining = total

        async def one() -> None:
            nonlocal failures
            try:
                response = await client.post("/chat/completions", json=body)
                failures += response.status_code != 200
            except httpx.TransportError:
                failures += 1

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                await one()

        # Warm-up: every connection opened once.
        await asyncio.gather(*(one() for _ in range(concurrency)))
        failures = 0
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return total / (time.perf_counter() - started), failures
