"""Production defaults: /metrics is protected (a token, or a port of its own, else Plume
will not start), /docs can be switched off, /readyz keeps the migration revision to the logs,
and a client's forwarded address is believed only from a configured proxy."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from plume.app import create_app
from plume.cli import uvicorn_options
from plume.config import ConfigurationError, Environment, load_settings
from tests.metrics.helpers import samples
from tests.runtime.helpers import live
from tests.support.clients import AppFactory, client_for
from tests.support.factories import fresh_insee
from tests.support.processes import PLUME, run_plume, wait_until_ready
from tests.support.servers import free_port
from tests.support.settings import TEST_SECRET, make_settings


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No PLUME_ variable but those a test sets; the working directory is a scratch one."""
    for name in list(os.environ):
        if name.startswith("PLUME_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PLUME_ENV", "production")
    return monkeypatch


def refusal(*, serving: bool) -> str:
    with pytest.raises(ConfigurationError) as raised:
        load_settings(serving=serving)
    message = str(raised.value)
    assert "\n" not in message.strip()
    return message


def test_serving_in_production_needs_a_metrics_token_or_port(
    environment: pytest.MonkeyPatch,
) -> None:
    environment.setenv("PLUME_SECRET_KEY", TEST_SECRET)
    message = refusal(serving=True)
    assert "PLUME_METRICS_TOKEN" in message
    assert "PLUME_METRICS_PORT" in message
    assert "PLUME_SECRET_KEY" not in message
    # Other commands (migrate, keys…) do not serve /metrics.
    assert load_settings().is_production

    environment.setenv("PLUME_METRICS_TOKEN", "a-long-metrics-token")
    assert load_settings(serving=True).metrics_token is not None
    environment.delenv("PLUME_METRICS_TOKEN")
    environment.setenv("PLUME_METRICS_PORT", "9464")
    assert load_settings(serving=True).metrics_port == 9464


def test_everything_missing_is_named_in_one_line(environment: pytest.MonkeyPatch) -> None:
    message = refusal(serving=True)
    assert message.startswith("PLUME_SECRET_KEY and PLUME_METRICS_TOKEN (or PLUME_METRICS_PORT)")
    assert message.endswith("are required in production")


def test_the_application_refuses_to_start_unprotected_in_production() -> None:
    settings = make_settings(None, env=Environment.PRODUCTION)
    with pytest.raises(ConfigurationError, match="PLUME_METRICS_TOKEN"):
        create_app(settings)


@pytest.mark.parametrize("value", ["0", "70000", "metrics"])
def test_an_invalid_metrics_port_is_named(environment: pytest.MonkeyPatch, value: str) -> None:
    environment.setenv("PLUME_SECRET_KEY", TEST_SECRET)
    environment.setenv("PLUME_METRICS_PORT", value)
    assert "PLUME_METRICS_PORT" in refusal(serving=False)


@pytest.mark.parametrize("value", ["10.0.0.300", "proxy.example", "10.0.0.0/33"])
def test_an_invalid_trusted_proxy_is_named(environment: pytest.MonkeyPatch, value: str) -> None:
    environment.setenv("PLUME_SECRET_KEY", TEST_SECRET)
    environment.setenv("PLUME_TRUSTED_PROXIES", f"10.0.0.1, {value}")
    assert "PLUME_TRUSTED_PROXIES" in refusal(serving=False)


async def test_with_a_metrics_port_the_api_does_not_serve_metrics(make_app: AppFactory) -> None:
    settings = make_settings(make_app.settings.database_url, metrics_port=9464)
    async with client_for(make_app(settings=settings)) as http:
        assert (await http.get("/metrics")).status_code == 404
        assert "/metrics" not in (await http.get("/openapi.json")).json()["paths"]


async def test_a_metrics_token_is_required_when_set(make_app: AppFactory) -> None:
    settings = make_settings(
        make_app.settings.database_url, metrics_token=SecretStr("a-long-metrics-token")
    )
    async with client_for(make_app(settings=settings)) as http:
        assert (await http.get("/metrics")).status_code == 401
        ok = await http.get("/metrics", headers={"Authorization": "Bearer a-long-metrics-token"})
        assert ok.status_code == 200


def test_forwarded_addresses_are_believed_from_configured_proxies_only() -> None:
    default = uvicorn_options(make_settings(None))
    assert default["proxy_headers"] is False
    configured = uvicorn_options(make_settings(None, trusted_proxies=["10.0.0.2", "10.1.0.0/16"]))
    assert configured["proxy_headers"] is True
    assert configured["forwarded_allow_ips"] == "10.0.0.2,10.1.0.0/16"


async def test_readyz_does_not_reveal_the_migration_revision(database_url: str) -> None:
    async with live(database_url) as http:
        ready = await http.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ok", "database": "ok"}


# --- `plume serve` in production, as an operator runs it (slow lane) -------------------------


@pytest.mark.slow
def test_plume_serve_in_production_refuses_to_start_unprotected(
    committed_database_url: str, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLUME_")}
    env.update(
        PLUME_ENV="production",
        PLUME_DATABASE_URL=committed_database_url,
        PLUME_STATE_DIR=str(tmp_path),
    )
    result = subprocess.run(
        [PLUME, "serve", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [
        "plume: configuration error: PLUME_SECRET_KEY and PLUME_METRICS_TOKEN "
        "(or PLUME_METRICS_PORT): are required in production"
    ]


@pytest.mark.slow
def test_plume_serve_in_production_with_a_metrics_port_and_a_trusted_proxy(
    committed_database_url: str, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLUME_")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    metrics_port = free_port()
    env.update(
        PLUME_ENV="production",
        PLUME_DATABASE_URL=committed_database_url,
        PLUME_SECRET_KEY=TEST_SECRET,
        PLUME_STATE_DIR=str(tmp_path),
        PLUME_METRICS_PORT=str(metrics_port),
        PLUME_DOCS="false",
        PLUME_TRUSTED_PROXIES="127.0.0.1",
    )
    insee = fresh_insee()
    run_plume(env, "bootstrap")
    run_plume(env, "orgs", "create", "--kind", "commune", "--name", "Prod", "--insee-code", insee)
    admin = run_plume(
        env, "keys", "create", "--organization", insee, "--role", "tenant_admin", "--name", "p"
    )
    auth = {"Authorization": f"Bearer {admin}"}
    port = free_port()
    server = subprocess.Popen(
        [PLUME, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(f"{base}/readyz", server)
        # Metrics on their own port (127.0.0.1 by default), not on the API's.
        assert httpx.get(f"{base}/metrics").status_code == 404
        metrics = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics")
        assert metrics.status_code == 200
        assert "plume_http_request_duration_seconds" in metrics.text
        # The organisations, read from the database at start-up, through the supervisor's
        # own exposition of the workers' files.
        info = {"organization": insee, "name": "Prod", "kind": "commune", "parent": "operator"}
        deadline = time.monotonic() + 10
        while samples(metrics.text).get(("plume_organization_info", frozenset(info.items()))) != 1:
            assert time.monotonic() < deadline, metrics.text
            time.sleep(0.1)
            metrics = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics")
        # PLUME_DOCS=false: no /docs, no /openapi.json.
        assert httpx.get(f"{base}/docs").status_code == 404
        assert httpx.get(f"{base}/openapi.json").status_code == 404

        # Through the trusted proxy (127.0.0.1), the client behind it is the one recorded;
        # from any other peer (127.0.0.2 here), the header is the caller's word: ignored.
        forwarded = {**auth, "X-Forwarded-For": "203.0.113.7"}
        httpx.get(f"{base}/v1/drafts/{uuid.uuid4()}", headers=forwarded)
        with httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.2")) as other:
            # Another route: a second refusal of the same kind within the minute would be
            # counted in the next entry, not written (tests/audit/test_refusals.py).
            other.get(f"{base}/v1/drafts/{uuid.uuid4()}/export?format=md", headers=forwarded)
        trail = httpx.get(f"{base}/v1/audit?action=access.denied", headers=auth).json()
        addresses = [item["client_address"] for item in reversed(trail["items"])]
        assert addresses == ["203.0.113.7", "127.0.0.2"]
        # A problem's type points at this server's own page by default.
        problem = httpx.get(f"{base}/v1/organization").json()
        assert problem["type"] == f"http://127.0.0.1:{port}/problems/unauthenticated"
        assert httpx.get(problem["type"]).status_code == 200
    finally:
        server.terminate()
        server.wait(timeout=30)
