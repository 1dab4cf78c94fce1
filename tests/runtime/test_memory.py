"""A worker gives back what loading pseudonymisation's model freed (plume.runtime.memory):
its resident memory stays that much lower for its whole life (docs/performance.md)."""

from __future__ import annotations

import json
import subprocess
import sys

from plume.runtime.memory import release_freed_memory

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
