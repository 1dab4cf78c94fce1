"""Metrics across worker processes: `plume serve --workers 2` sums counters correctly and
shows the freshest quota gauge of its live workers."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.metrics.helpers import BULLETIN, samples, value
from tests.support.factories import fresh_insee, fresh_siren
from tests.support.processes import PLUME, run_plume, wait_until_ready
from tests.support.servers import free_port
from tests.support.settings import TEST_SECRET

# Slow lane: `plume` commands and `plume serve --workers 2` as subprocesses.
pytestmark = pytest.mark.slow


def test_two_workers_agree_with_the_usage_report(
    committed_database_url: str, tmp_path: Path
) -> None:
    """Requests spread over two worker processes and two communes of an EPCI: /metrics and
    /v1/usage agree for each commune, the EPCI's report sums them, and the quota gauge shows
    the freshest value of the live workers (not their sum)."""
    env = {
        **os.environ,
        "PLUME_ENV": "test",
        "PLUME_DATABASE_URL": committed_database_url,
        "PLUME_SECRET_KEY": TEST_SECRET,
        "PLUME_STATE_DIR": str(tmp_path),
        "PLUME_QUOTA_GAUGE_INTERVAL_S": "0.2",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)

    operator = run_plume(env, "bootstrap")
    siren = fresh_siren()
    run_plume(env, "orgs", "create", "--kind", "epci", "--name", "CC Deux", "--siren", siren)
    communes = [fresh_insee(), fresh_insee()]
    keys = {}
    for index, insee in enumerate(communes):
        run_plume(
            env,
            "orgs",
            "create",
            "--kind",
            "commune",
            "--name",
            f"Commune {index}",
            "--insee-code",
            insee,
            "--parent",
            siren,
        )
        keys[insee] = run_plume(
            env, "keys", "create", "--organization", insee, "--role", "agent", "--name", "m"
        )
    epci_admin = run_plume(
        env, "keys", "create", "--organization", siren, "--role", "tenant_admin", "--name", "a"
    )
    port = free_port()
    server = subprocess.Popen(
        [PLUME, "serve", "--port", str(port), "--workers", "2"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    sent = {communes[0]: 7, communes[1]: 5}
    try:
        wait_until_ready(f"{base}/readyz", server)
        first = httpx.get(
            f"{base}/v1/organization", headers={"Authorization": f"Bearer {keys[communes[0]]}"}
        ).json()
        limit = 20
        quota = httpx.put(
            f"{base}/v1/admin/organizations/{first['id']}/quotas",
            json=[{"metric": "requests", "period": "day", "limit": limit}],
            headers={"Authorization": f"Bearer {operator}"},
        )
        assert quota.status_code == 200, quota.text
        for insee, count in sent.items():
            for _ in range(count):
                # A new connection each time, so both workers get some.
                response = httpx.post(
                    f"{base}/v1/drafts",
                    json=BULLETIN,
                    headers={"Authorization": f"Bearer {keys[insee]}"},
                    timeout=30,
                )
                assert response.status_code == 201, response.text
        # The workers refresh the quota gauge on a timer (every 0.2 s here): scrape until it
        # shows this burst, rather than sleeping for a few refreshes (a gauge adding up the
        # workers' values would never show it, and fails below).
        deadline = time.monotonic() + 15
        while True:
            text = httpx.get(f"{base}/metrics", timeout=10).text
            shown = value(
                text,
                "plume_quota_used_ratio",
                organization=communes[0],
                metric="requests",
                period="day",
            )
            if shown == pytest.approx(sent[communes[0]] / limit) or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        # A commune renamed through one worker: its old name leaves the exposition at once,
        # though the other worker showed it too and cannot forget it (its value becomes 0,
        # which the exposition leaves out), and does not come back with that worker's
        # next refreshes.
        renamed = httpx.patch(
            f"{base}/v1/admin/organizations/{first['id']}",
            json={"name": "Commune renommée"},
            headers={"Authorization": f"Bearer {operator}"},
        )
        assert renamed.status_code == 200, renamed.text
        names = _names(httpx.get(f"{base}/metrics", timeout=10).text, communes[0])
        assert names == ["Commune renommée"]
        time.sleep(1)  # five refreshes of each worker
        assert _names(httpx.get(f"{base}/metrics", timeout=10).text, communes[0]) == names
        report = httpx.get(
            f"{base}/v1/usage?group_by=organization",
            headers={"Authorization": f"Bearer {epci_admin}"},
            timeout=10,
        ).json()
    finally:
        server.terminate()
        server.wait(timeout=30)

    rows = {row["key"]: row for row in report["rows"]}
    assert set(rows) == set(communes)
    for insee, count in sent.items():
        requests = value(
            text,
            "plume_requests_total",
            organization=insee,
            kind="bulletin_article",
            model_group="offline",
            outcome="success",
        )
        assert requests == rows[insee]["requests"] == count
        for direction in ("prompt", "completion"):
            tokens = value(
                text,
                "plume_tokens_total",
                organization=insee,
                model_group="offline",
                direction=direction,
            )
            assert tokens == rows[insee][f"{direction}_tokens"] > 0
        energy = value(text, "plume_energy_kwh_total", organization=insee)
        assert energy == pytest.approx(rows[insee]["energy_kwh"], rel=1e-9)
        assert energy > 0
        assert value(text, "plume_cost_euros_total", organization=insee, provider="offline") == 0
    assert report["total"]["requests"] == sum(sent.values())
    assert report["total"]["prompt_tokens"] == sum(r["prompt_tokens"] for r in rows.values())
    ratio = value(
        text, "plume_quota_used_ratio", organization=communes[0], metric="requests", period="day"
    )
    assert ratio == pytest.approx(sent[communes[0]] / limit)


def _names(text: str, slug: str) -> list[str]:
    """The names plume_organization_info shows for the organisation."""
    return [
        dict(labels)["name"]
        for (name, labels) in samples(text)
        if name == "plume_organization_info" and ("organization", slug) in labels
    ]
