"""The suite's configuration: the environment plume is imported under, and the fixtures of
tests.support.fixtures (the test database, clients, factories, fake provider)."""

from __future__ import annotations

import os
from pathlib import Path

from tests.support.processes import share_compiled_bytecode

# Before Plume and LiteLLM are imported: their bytecode, compiled once, is kept in pytest's
# cache directory for the next runs, the xdist workers and the processes tests start.
share_compiled_bytecode(Path(__file__).resolve().parents[1] / ".pytest_cache" / "d" / "pycache")

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ["PLUME_ENV"] = "test"
# The in-process applications keep their metrics in memory: with a multiprocess directory
# from the caller's environment, every pytest process (each xdist worker) would write its
# counts to the same files and read the others' back. Popped before prometheus_client is
# imported, which reads it then; `plume serve --workers N` started by a test gets its own.
os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)

pytest_plugins = ["tests.support.fixtures", "tests.support.skipped_tools"]
