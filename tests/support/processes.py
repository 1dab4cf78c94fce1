"""Tests that run `plume` (or another Python program) as a separate process, as an operator
would."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

PLUME = str(Path(sys.executable).with_name("plume"))
# The repository: `python -m tests.support.providers` runs from here.
ROOT = Path(__file__).resolve().parents[2]


def share_compiled_bytecode(directory: Path) -> None:
    """Keep compiled bytecode in `directory`, for this process and the ones it starts.

    With PYTHONDONTWRITEBYTECODE (set on the project's machines) every pytest process, xdist
    worker and `plume` a test starts would compile again every module it imports, LiteLLM's
    included: seconds each. PYTHONPYCACHEPREFIX keeps the bytecode out of the source tree
    and the virtualenv all the same. A .pyc is written to a temporary file then renamed, so
    processes running side by side share the directory safely.
    """
    sys.pycache_prefix = str(directory)
    sys.dont_write_bytecode = False
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ["PYTHONPYCACHEPREFIX"] = str(directory)


def run_plume(env: dict[str, str], *args: str) -> str:
    """Run one `plume` command; its standard output, stripped."""
    result = subprocess.run(
        [PLUME, *args], env=env, check=True, capture_output=True, text=True, timeout=60
    )
    return result.stdout.strip()


def wait_until_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 90) -> None:
    """Poll `url` until it answers 200; fail if the process exits or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        assert process.poll() is None, f"the process serving {url} exited at start-up"
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, f"{url} did not answer in {timeout} s"
        time.sleep(0.2)
