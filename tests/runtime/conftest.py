"""The environment and working directory of `plume` subprocesses, and a bootstrap run once
per session on the committed database."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.runtime.helpers import Result, plume
from tests.support.settings import TEST_SECRET


@pytest.fixture(scope="session")
def cli_base_env() -> dict[str, str]:
    """The environment of `plume` subprocesses, without any PLUME_ variable (compiled
    bytecode is shared: see tests.support.processes.share_compiled_bytecode)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PLUME_")}


@pytest.fixture(scope="session")
def cli_env(cli_base_env: dict[str, str], committed_database_url: str) -> dict[str, str]:
    return {
        **cli_base_env,
        "PLUME_DATABASE_URL": committed_database_url,
        "PLUME_SECRET_KEY": TEST_SECRET,
        "PLUME_ENV": "test",
    }


@pytest.fixture(scope="session")
def cli_cwd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cwd")


@pytest.fixture(scope="session")
async def bootstrapped(cli_env: dict[str, str], cli_cwd: Path) -> Result:
    return await plume("bootstrap", env=cli_env, cwd=cli_cwd)
