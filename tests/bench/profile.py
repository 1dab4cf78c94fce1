"""Where a `plume serve` worker's CPU goes: py-spy's raw samples (collapsed stacks, one
`frame;frame;… count` a line) split by area — LiteLLM, FastAPI/pydantic, PostgreSQL, logging,
metrics, audit, quotas, the ASGI server, the HTTP client to the provider.

`PLUME_BENCH_PROFILE=DIR make bench` runs Plume under `py-spy record` and writes DIR/plume-*.txt;
`python -m tests.bench.profile DIR/plume-….txt` prints the split (docs/performance.md).
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

# Checked in this order against a frame's file; the first match names the frame's area.
AREAS: list[tuple[str, tuple[str, ...]]] = [
    ("audit", ("plume/audit/",)),
    ("quotas", ("plume/quotas/",)),
    ("metrics", ("plume/metrics/", "prometheus_client/")),
    ("logging", ("plume/runtime/log.py", "structlog/", "/logging/")),
    ("LiteLLM", ("litellm/",)),
    ("PostgreSQL (SQLAlchemy, psycopg)", ("sqlalchemy/", "psycopg/", "psycopg_pool/")),
    ("FastAPI/pydantic/Starlette", ("fastapi/", "pydantic/", "pydantic_core/", "starlette/")),
    ("ASGI server (uvicorn)", ("uvicorn/", "h11/", "httptools/")),
    ("HTTP client (httpx, aiohttp)", ("httpx/", "httpcore/", "aiohttp/", "anyio/")),
    ("Plume (other)", ("plume/",)),
    ("asyncio", ("asyncio/",)),
]
OTHER = "other (JSON, stdlib, interpreter)"


def _area(frame: str) -> str | None:
    location = frame.rsplit("(", 1)[-1]
    for name, markers in AREAS:
        if any(marker in location for marker in markers):
            return name
    return None


def split(lines: list[str]) -> tuple[int, Counter[str], Counter[str]]:
    """(samples, self samples by area, inclusive samples by area).

    Self: each sample goes to the innermost frame that belongs to an area (a query issued by
    the audit counts as PostgreSQL). Inclusive: a sample counts for every area on its stack
    (the audit's query counts for the audit and for PostgreSQL)."""
    total, own, inclusive = 0, Counter[str](), Counter[str]()
    for line in lines:
        stack, _, count_text = line.strip().rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        if "_find_and_load" in stack:
            continue  # importing: start-up, or a lazy import on the first request
        total += count
        areas = [_area(frame) for frame in stack.split(";")]
        found = [area for area in areas if area is not None]
        own[found[-1] if found else OTHER] += count
        for area in set(found):
            inclusive[area] += count
    return total, own, inclusive


def main() -> None:
    path = Path(sys.argv[1])
    total, own, inclusive = split(path.read_text().splitlines())
    print(f"{total} samples of {path.name}")
    print("| area | self | inclusive |")
    print("|---|---|---|")
    for name in [*(name for name, _ in AREAS), OTHER]:
        print(f"| {name} | {own[name] / total:.1%} | {inclusive[name] / total:.1%} |")


if __name__ == "__main__":
    main()
