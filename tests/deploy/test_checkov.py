"""checkov, the static security checks, on what is deployed: the chart's rendered objects
(both database modes), the Dockerfile, and the Terraform of infra/ (checkov has no check of
its own for Scaleway: infra/checkov holds Plume's). No failed check; every skipped one
carries its reason (checkov.io/skipN annotations in the chart). checkov runs offline
(--skip-download) from its own virtualenv, .venv-tools."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.chart import DOCKERFILE, EXTERNAL, INFRA, checkov, manifest, render

# Slow lane: each run of checkov takes seconds.
pytestmark = pytest.mark.slow


def run_checkov(*args: str) -> list[dict[str, Any]]:
    environment = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "LOG_LEVEL": "ERROR"}
    result = subprocess.run(
        [str(checkov()), "--skip-download", "--output", "json", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=environment,
    )
    assert result.stdout.strip(), result.stderr[-2000:]
    reports = json.loads(result.stdout)
    return reports if isinstance(reports, list) else [reports]


def summarise(reports: list[dict[str, Any]]) -> dict[str, int]:
    totals = {"passed": 0, "failed": 0, "skipped": 0, "parsing_errors": 0}
    for report in reports:
        summary = report.get("summary", report)
        for key in totals:
            totals[key] += summary.get(key, 0)
    return totals


def failures(reports: list[dict[str, Any]]) -> list[str]:
    return [
        f"{check['check_id']} {check['resource']} ({check['check_name']})"
        for report in reports
        for check in report.get("results", {}).get("failed_checks", [])
    ]


def unjustified_skips(reports: list[dict[str, Any]]) -> list[str]:
    return [
        f"{check['check_id']} {check['resource']}"
        for report in reports
        for check in report.get("results", {}).get("skipped_checks", [])
        if len(reason(check)) < 20
    ]


def reason(check: dict[str, Any]) -> str:
    """Why a check was skipped: checkov's suppress_comment (an annotation's text)."""
    result = check.get("check_result") or {}
    return str(result.get("suppress_comment") or check.get("suppress_comment") or "").strip()


def test_the_rendered_chart_passes(tmp_path: Path) -> None:
    (tmp_path / "cloudnativepg.yaml").write_text(manifest(render()), encoding="utf-8")
    (tmp_path / "external.yaml").write_text(manifest(render(EXTERNAL)), encoding="utf-8")
    digest = {"image": {"digest": "sha256:" + "0" * 64}}
    (tmp_path / "pinned.yaml").write_text(manifest(render(digest)), encoding="utf-8")
    reports = run_checkov("--framework", "kubernetes", "--directory", str(tmp_path))
    totals = summarise(reports)
    assert failures(reports) == []
    assert unjustified_skips(reports) == []
    assert totals["parsing_errors"] == 0
    assert totals["passed"] > 300  # the Deployment and the Job alone have dozens each
    # The skips are the chart's: two per Plume container, and the digest only where unset.
    skipped = {
        check["check_id"]
        for report in reports
        for check in report.get("results", {}).get("skipped_checks", [])
    }
    assert skipped == {"CKV_K8S_15", "CKV_K8S_35", "CKV_K8S_43"}


def test_the_dockerfile_passes() -> None:
    reports = run_checkov("--framework", "dockerfile", "--file", str(DOCKERFILE))
    assert failures(reports) == []
    assert unjustified_skips(reports) == []
    assert summarise(reports)["passed"] > 50


def test_the_terraform_passes_plumes_own_checks() -> None:
    reports = run_checkov(
        "--framework",
        "terraform",
        "--directory",
        str(INFRA),
        "--external-checks-dir",
        str(INFRA / "checkov"),
    )
    assert failures(reports) == []
    assert unjustified_skips(reports) == []
    passed = {
        check["check_id"]
        for report in reports
        for check in report.get("results", {}).get("passed_checks", [])
    }
    assert passed == {f"CKV2_PLUME_{n}" for n in range(1, 9)}


def test_plumes_terraform_checks_catch_what_they_are_for(tmp_path: Path) -> None:
    (tmp_path / "main.tf").write_text(
        """
resource "scaleway_k8s_pool" "public" {
  cluster_id         = "x"
  name               = "public"
  node_type          = "PRO2-S"
  size               = 1
  public_ip_disabled = false
}

resource "scaleway_object_bucket" "unversioned" {
  name = "unversioned"
}

resource "scaleway_rdb_instance" "exposed" {
  name               = "exposed"
  engine             = "PostgreSQL-16"
  node_type          = "DB-DEV-S"
  encryption_at_rest = false
  disable_backup     = true
  load_balancer {}
}
""",
        encoding="utf-8",
    )
    reports = run_checkov(
        "--framework",
        "terraform",
        "--directory",
        str(tmp_path),
        "--external-checks-dir",
        str(INFRA / "checkov"),
        "--check",
        ",".join(f"CKV2_PLUME_{n}" for n in range(1, 9)),
    )
    failed = {line.split()[0] for line in failures(reports)}
    assert failed == {f"CKV2_PLUME_{n}" for n in (1, 2, 3, 4, 6)}
