"""The suite's configuration: the environment plume is imported under, and the fixtures of
tests.support.fixtures (the test database, clients, factories, fake provider)."""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ["PLUME_ENV"] = "test"

pytest_plugins = ["tests.support.fixtures"]
