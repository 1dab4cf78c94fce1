"""A worker gives back what loading pseudonymisation's model freed (plume.runtime.memory):
its resident memory stays that much lower for its whole life; and what it holds at start is
left out of the cyclic collector's passes (docs/performance.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from plume.runtime.memory import release_freed_memory
from tests.support.settings import TEST_SECRET

# In a fresh interpreter: the PSS (MB) after the model's load, and what one more trim then
# gives back. The load trims: little is left to give back.
_PROBE = """
import json
from plume.privacy import detection
from plume.runtime.memory import release_freed_memory

def pss():
    with open("/proc/self/smaps_rollup") as rollup:
        for line in rollup:
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024

detection.model()
loaded = pss()
release_freed_memory()
print(json.dumps({"loaded": loaded, "trimmed": pss()}))
"""


def test_the_c_library_gives_freed_memory_back() -> None:
    assert release_freed_memory()  # glibc, here and in the image


def test_loading_the_model_leaves_no_freed_memory_behind() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True, timeout=120
    )
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    # Without the trim in detection.model(), this second one gave back about 12 MB.
    assert figures["loaded"] - figures["trimmed"] < 4, figures


# In a fresh interpreter: the objects frozen (gc.freeze) once an application has started, as
# tests build it and as `plume serve` builds its workers; and how long a full pass of the
# collector takes then, in milliseconds.
_SERVED_PROBE = """
import asyncio, gc, json, sys, time
from plume.app import create_app, served_app

async def started(app):
    async with app.router.lifespan_context(app):
        before = time.perf_counter()
        gc.collect()
        return gc.get_freeze_count(), (time.perf_counter() - before) * 1000

factory = served_app if sys.argv[1] == "served" else create_app
frozen, full_pass_ms = asyncio.run(started(factory()))
print(json.dumps({"frozen": frozen, "full_pass_ms": full_pass_ms}))
"""


def _started(how: str, database_url: str) -> dict[str, float]:
    env = {
        **os.environ,
        "PLUME_ENV": "test",
        "PLUME_DATABASE_URL": database_url,
        "PLUME_SECRET_KEY": TEST_SECRET,
        "PLUME_LOG_LEVEL": "WARNING",
    }
    done = subprocess.run(
        [sys.executable, "-c", _SERVED_PROBE, how],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        env=env,
    )
    figures: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


@pytest.mark.slow
def test_a_served_worker_keeps_what_it_holds_at_start_out_of_the_collectors_passes(
    committed_database_url: str,
) -> None:
    served = _started("served", committed_database_url)
    # LiteLLM, FastAPI and the application: several hundred thousand objects, which every
    # full pass walked (about 200 ms on this machine, every request on hold).
    assert served["frozen"] > 200_000, served
    # An application built for tests freezes nothing: it would keep every test's cycles.
    assert _started("plain", committed_database_url)["frozen"] == 0
