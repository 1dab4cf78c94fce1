"""Prometheus metrics: per-commune series after real requests, route templates, the token,
and correct sums across worker processes."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from httpx import AsyncClient
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from tests.support.clients import AppFactory, client_for
from tests.support.factories import Factory, fresh_insee, fresh_siren
from tests.support.processes import PLUME, run_plume, wait_until_ready
from tests.support.servers import free_port
from tests.support.settings import TEST_SECRET, make_settings

BULLETIN = {"kind": "bulletin_article", "subject": "Fête du village", "key_points": ["Samedi."]}


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(text: str, name: str, **labels: str) -> float:
    return samples(text).get((name, frozenset(labels.items())), 0.0)


async def test_a_draft_is_counted_for_its_commune(client: AsyncClient, factory: Factory) -> None:
    commune = await factory.commune()
    key = await factory.key(commune)
    slug = commune.slug
    before = (await client.get("/metrics")).text
    response = await client.post("/v1/drafts", json=BULLETIN, headers=key.headers)
    assert response.status_code == 201, response.text
    draft_id = response.json()["id"]
    assert (await client.get(f"/v1/drafts/{draft_id}", headers=key.headers)).status_code == 200
    after = (await client.get("/metrics")).text
    request = {
        "organization": slug,
        "kind": "bulletin_article",
        "model_group": "offline",
        "outcome": "success",
    }
    assert value(after, "plume_requests_total", **request) == (
        value(before, "plume_requests_total", **request) + 1
    )
    usage = response.json()["usage"]
    for direction, tokens in (
        ("prompt", usage["prompt_tokens"]),
        ("completion", usage["completion_tokens"]),
    ):
        labels = {"organization": slug, "model_group": "offline", "direction": direction}
        assert value(after, "plume_tokens_total", **labels) == (
            value(before, "plume_tokens_total", **labels) + tokens
        )
    # The offline provider costs nothing, and the series exists all the same.
    assert (
        "plume_cost_euros_total",
        frozenset({("organization", slug), ("provider", "offline")}),
    ) in (samples(after))
    # Routes by template: never a raw path with an id in it.
    assert draft_id not in after
    route = {"route": "/v1/drafts/{draft_id}", "method": "GET", "status": "200"}
    assert value(after, "plume_http_request_duration_seconds_count", **route) >= 1
    assert "plume_provider_latency_seconds_bucket" in after


async def test_metrics_may_require_a_token(make_app: AppFactory, database_url: str) -> None:
    settings = make_settings(database_url, metrics_token=SecretStr("s3cret-metrics-token"))
    async with client_for(make_app(settings=settings)) as http:
        assert (await http.get("/metrics")).status_code == 401
        wrong = await http.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        right = await http.get("/metrics", headers={"Authorization": "Bearer s3cret-metrics-token"})
        assert right.status_code == 200
        assert "plume_requests_total" in right.text


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
        time.sleep(1)  # two gauge refreshes
        text = httpx.get(f"{base}/metrics", timeout=10).text
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
