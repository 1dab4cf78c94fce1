"""A loud line at the end of a run whose tests were skipped for want of a tool (Chromium,
PostgreSQL's binaries...): `-ra` lists them among other skips, easy to miss; this says it
in capitals, with what to do. Under PLUME_REQUIRE_TOOLS=1 (CI) such tests fail instead."""

from __future__ import annotations

from collections import Counter
from collections.abc import Generator
from typing import Any

import pytest

# The reason tests.support.tools.require_tool gives.
MISSING = "n'est pas installé"


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_terminal_summary(terminalreporter: Any) -> Generator[None]:
    """After every other summary (the last lines a reader sees)."""
    yield
    missing: Counter[str] = Counter()
    for report in terminalreporter.stats.get("skipped", []):
        longrepr = report.longrepr
        reason = str(longrepr[2]) if isinstance(longrepr, tuple) else str(longrepr)
        if MISSING in reason:
            missing[reason.removeprefix("Skipped: ").split(" (")[0]] += 1
    if not missing:
        return
    terminalreporter.write_sep("!", "TESTS NON EXÉCUTÉS : OUTILS ABSENTS", red=True, bold=True)
    for what, count in sorted(missing.items()):
        terminalreporter.write_line(f"{count} test(s) sauté(s) : {what}", red=True, bold=True)
    terminalreporter.write_line(
        "Installez-les (voir .ci/run, qui les installe et les rend obligatoires avec "
        "PLUME_REQUIRE_TOOLS=1).",
        red=True,
    )
