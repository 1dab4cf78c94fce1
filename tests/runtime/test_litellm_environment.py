"""LiteLLM is imported hardened, whatever the environment says: its cost map and Anthropic
beta headers from the copies it ships (never fetched), in production mode (no `.env` file
read from the working directory)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# Slow lane: a Python process imports Plume and LiteLLM (seconds).
pytestmark = pytest.mark.slow

_PROBE = """
import json, os
import plume.app
import litellm
from litellm.litellm_core_utils.get_model_cost_map import get_model_cost_map_source_info
print(json.dumps({
    "cost_map": get_model_cost_map_source_info(),
    "mode": litellm.litellm_mode,
    "beta_headers": os.environ.get("LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS"),
    "dotenv": os.environ.get("PLUME_PROBE_FROM_DOTENV"),
}))
"""


def test_litellm_is_imported_hardened_whatever_the_environment(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("PLUME_PROBE_FROM_DOTENV=loaded\n")
    env = {
        **os.environ,
        "LITELLM_LOCAL_MODEL_COST_MAP": "false",
        "LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS": "false",
        "LITELLM_MODE": "DEV",
        # Whatever this fetch would reach, it is not asked for.
        "LITELLM_MODEL_COST_MAP_URL": "http://127.0.0.1:9/model_prices.json",
    }
    result = subprocess.run(
        [sys.executable, "-c", _PROBE],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    probe = json.loads(result.stdout.strip().splitlines()[-1])
    assert probe["cost_map"]["source"] == "local"
    assert probe["cost_map"]["is_env_forced"] is True
    assert probe["beta_headers"] == "True"
    assert probe["mode"] == "PRODUCTION"
    assert probe["dotenv"] is None
