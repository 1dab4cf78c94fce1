"""What the deployment tests share: the Helm chart rendered offline (Helm's own Go library,
through helm-python-sdk: no helm binary, no cluster), and the tools found in the project's
virtualenvs (hadolint in .venv, checkov in .venv-tools) or on PATH (terraform)."""

from __future__ import annotations

import os
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "plume"
INFRA = ROOT / "infra"
DOCKERFILE = ROOT / "Dockerfile"
RELEASE = "plume"
NAMESPACE = "plume"
# The Kubernetes version the rendered objects are validated against: Scaleway Kapsule's
# (infra/environments/production, kubernetes_version). kubernetes-validate ships its schemas.
KUBERNETES_VERSION = "1.33.0"

# The custom resources no schema is available for offline (their operators' CRDs are not
# shipped by any package installed here): checked structurally in test_helm.py instead.
CUSTOM_KINDS = {
    ("postgresql.cnpg.io/v1", "Cluster"),
    ("postgresql.cnpg.io/v1", "Pooler"),
    ("postgresql.cnpg.io/v1", "ScheduledBackup"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
}

EXTERNAL = {"postgresql": {"mode": "external"}}


def require_path(path: Path, *, what: str, how: str) -> Path:
    """`path` if it exists; else skip (or fail under PLUME_REQUIRE_TOOLS=1, as CI sets),
    like tests/support/tools.require_tool."""
    if path.exists():
        return path
    message = f"{what} n'est pas installé ({path} introuvable ; {how})"
    if os.environ.get("PLUME_REQUIRE_TOOLS") == "1":
        pytest.fail(f"{message} : PLUME_REQUIRE_TOOLS=1 l'exige")
    pytest.skip(message)


def venv_tool(name: str) -> Path:
    """A console script of the virtualenv running the tests (the dev lock's tools)."""
    return require_path(
        Path(sys.executable).parent / name, what=name, how="make install l'installe"
    )


def checkov() -> Path:
    return require_path(
        ROOT / ".venv-tools" / "bin" / "checkov",
        what="checkov",
        how="make install l'installe dans .venv-tools (requirements/tools.lock)",
    )


def _helm() -> Any:
    try:
        import helm_python
    except ImportError:  # pragma: no cover - the dev lock has it
        require_path(Path("/nonexistent/helm_python"), what="helm-python-sdk", how="make install")
    return helm_python


@cache
def _render(values_yaml: str) -> tuple[tuple[str, str], ...]:
    helm = _helm()
    chart = helm.Chart.load(str(CHART))
    try:
        rendered = chart.render(
            yaml.safe_load(values_yaml) or None,
            name=RELEASE,
            namespace=NAMESPACE,
            is_install=True,
        )
    finally:
        chart.close()
    return tuple(sorted(rendered.items()))


def render(values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every object the chart renders with `values` over values.yaml, as Helm would install
    them (hooks included), in template order."""
    objects: list[dict[str, Any]] = []
    for path, text in _render(yaml.safe_dump(values or {})):
        for document in yaml.safe_load_all(text):
            if document:
                objects.append({"_template": path, **document})
    return objects


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = by_kind(objects, kind)
    assert len(found) == 1, f"{len(found)} {kind}"
    return found[0]


def manifest(objects: list[dict[str, Any]]) -> str:
    """The objects as one YAML stream, without the test's own bookkeeping."""
    return yaml.safe_dump_all(
        [{k: v for k, v in o.items() if k != "_template"} for o in objects], sort_keys=False
    )
