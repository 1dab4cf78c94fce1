"""System tools some tests need (LibreOffice, promtool): skipped where missing, with the
reason shown by `make test`, unless PLUME_REQUIRE_TOOLS=1 (CI, which installs them): then
a missing tool fails the test, so that it can never pass unchecked."""

from __future__ import annotations

import os
import shutil

import pytest


def require_tool(*names: str, what: str) -> str:
    """The path of the first of `names` on PATH; else skip (or fail, in CI)."""
    for name in names:
        path = shutil.which(name)
        if path is not None:
            return path
    message = f"{what} n'est pas installé ({' ou '.join(names)} introuvable)"
    if os.environ.get("PLUME_REQUIRE_TOOLS") == "1":
        pytest.fail(f"{message} : PLUME_REQUIRE_TOOLS=1 l'exige")
    pytest.skip(message)
