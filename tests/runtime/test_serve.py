"""`plume serve`: it answers, and on SIGTERM stops accepting, lets an in-flight request
finish and exits 0."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.calls.pacing import running_paced_provider
from tests.drafting.helpers import french_source
from tests.support.factories import fresh_insee
from tests.support.processes import PLUME, run_plume, wait_until_ready
from tests.support.providers import running_fake_provider
from tests.support.servers import free_port
from tests.support.settings import TEST_SECRET

# Slow lane: each test runs `plume serve` as a subprocess.
pytestmark = pytest.mark.slow


async def test_serve_answers_and_stops_cleanly_on_sigterm(
    cli_env: dict[str, str], cli_cwd: Path
) -> None:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        PLUME,
        "serve",
        "--port",
        str(port),
        env=cli_env,
        cwd=cli_cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=2) as http:
            for _ in range(150):
                assert process.returncode is None, "plume serve exited early"
                try:
                    if (await http.get("/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
            else:
                pytest.fail("plume serve did not answer /healthz within 15 s")
            ready = await http.get("/readyz")
            assert ready.status_code == 200, ready.text
            assert ready.headers["x-request-id"]

        process.send_signal(signal.SIGTERM)
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=10)
        assert process.returncode == 0, stderr.decode()[-2000:]
        assert stdout == b""  # logs go to standard error
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_sigterm_fails_readiness_at_once_and_answers_through_the_drain_delay(
    cli_env: dict[str, str], cli_cwd: Path
) -> None:
    """With PLUME_DRAIN_DELAY_S, SIGTERM turns /readyz to 503 `draining` at once while the
    port stays open (a load balancer's probe sees it), then the process drains and exits 0."""
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        *(PLUME, "serve", "--port", str(port)),
        env={**cli_env, "PLUME_DRAIN_DELAY_S": "3"},
        cwd=cli_cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=2) as http:
            for _ in range(300):
                assert process.returncode is None, "plume serve exited early"
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get("/readyz")).status_code == 200:
                        break
                await asyncio.sleep(0.1)
            else:
                pytest.fail("plume serve was not ready within 30 s")
            process.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            await asyncio.sleep(0.3)
            ready = await http.get("/readyz")
            assert (ready.status_code, ready.json()) == (503, {"status": "draining"})
            assert (await http.get("/healthz")).status_code == 200
            assert time.monotonic() - signalled < 2.5  # still within the delay
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=20)
        assert process.returncode == 0, stderr.decode()[-2000:]
        assert time.monotonic() - signalled >= 3
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def test_sigterm_drains_an_in_flight_request(committed_database_url: str, tmp_path: Path) -> None:
    with running_fake_provider(slow_seconds=2.0) as fake:
        models = tmp_path / "models.yaml"
        models.write_text(
            "model_groups:\n"
            "  - name: lent\n"
            "    deployments:\n"
            "      - model: openai/slow\n"
            f"        api_base: {fake.api_base}\n"
            "        hosting: fr\n"
            "        timeout_s: 10\n"
            "        price_per_million_tokens: {input: 0, output: 0}\n"
        )
        env = {
            **os.environ,
            "PLUME_ENV": "test",
            "PLUME_DATABASE_URL": committed_database_url,
            "PLUME_SECRET_KEY": TEST_SECRET,
            "PLUME_MODELS_FILE": str(models),
            "PLUME_DRAIN_TIMEOUT_S": "15",
            "PLUME_STATE_DIR": str(tmp_path),
        }
        insee = fresh_insee()
        run_plume(env, "bootstrap")
        run_plume(
            env, "orgs", "create", "--kind", "commune", "--name", "Drain", "--insee-code", insee
        )
        key = run_plume(
            env, "keys", "create", "--organization", insee, "--role", "agent", "--name", "d"
        )
        port = free_port()
        server = subprocess.Popen(
            [PLUME, "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            wait_until_ready(f"{base}/healthz", server)

            answers: list[httpx.Response] = []

            def ask() -> None:
                answers.append(
                    httpx.post(
                        f"{base}/v1/chat/completions",
                        headers={"Authorization": f"Bearer {key}"},
                        json={"model": "lent", "messages": [{"role": "user", "content": "?"}]},
                        timeout=30,
                    )
                )

            client = threading.Thread(target=ask)
            client.start()
            while fake.calls["slow"] == 0:  # the request is now in flight, at the provider
                time.sleep(0.02)
            server.send_signal(signal.SIGTERM)
            client.join(timeout=30)
            assert server.wait(timeout=30) == 0
            assert len(answers) == 1
            assert answers[0].status_code == 200, answers[0].text
            assert answers[0].json()["choices"][0]["message"]["content"]
            # Once drained, nothing is accepted any more.
            try:
                httpx.get(f"{base}/healthz", timeout=1)
                raise AssertionError("the server still accepts connections")
            except httpx.ConnectError:
                pass
        finally:
            if server.poll() is None:
                server.kill()
                server.wait()


def test_sigterm_settles_what_it_cuts_before_it_stops(
    committed_database_url: str, tmp_path: Path
) -> None:
    """A stream and a synthèse job still running when the drain's time is up: the stream is
    cut and the job stopped, and both are settled — usage recorded and charged what was
    produced, nothing left held — before the process lets go of its database."""
    with running_paced_provider(pause_s=1.0, trickle_s=0.3) as paced:
        models = tmp_path / "models.yaml"
        models.write_text(
            "model_groups:\n"
            "  - name: flux\n"
            "    default: true\n"
            "    deployments:\n"
            "      - model: openai/trickle\n"
            f"        api_base: {paced.api_base}\n"
            "        hosting: fr\n"
            "        timeout_s: 30\n"
            "        price_per_million_tokens: {input: 1, output: 2}\n"
            "  - name: synthese\n"
            "    max_output_tokens: 256\n"
            "    deployments:\n"
            "      - model: openai/pause\n"
            f"        api_base: {paced.api_base}\n"
            "        hosting: fr\n"
            "        timeout_s: 30\n"
            "        context_window: 2048\n"
            "        price_per_million_tokens: {input: 1, output: 2}\n"
        )
        env = {
            **os.environ,
            "PLUME_ENV": "test",
            "PLUME_DATABASE_URL": committed_database_url,
            "PLUME_SECRET_KEY": TEST_SECRET,
            "PLUME_MODELS_FILE": str(models),
            "PLUME_DRAIN_TIMEOUT_S": "1",
            "PLUME_STATE_DIR": str(tmp_path),
        }
        operator = run_plume(env, "bootstrap")
        insee = fresh_insee()
        run_plume(
            env, "orgs", "create", "--kind", "commune", "--name", "Coupée", "--insee-code", insee
        )
        key = run_plume(
            env, "keys", "create", "--organization", insee, "--role", "agent", "--name", "c"
        )
        agent = {"Authorization": f"Bearer {key}"}
        port = free_port()
        server = subprocess.Popen(
            [PLUME, "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            wait_until_ready(f"{base}/healthz", server)
            commune_id = httpx.get(f"{base}/v1/organization", headers=agent).json()["id"]
            quotas = httpx.put(
                f"{base}/v1/admin/organizations/{commune_id}/quotas",
                json=[{"metric": "tokens", "period": "day", "limit": 10_000_000}],
                headers={"Authorization": f"Bearer {operator}"},
            )
            assert quotas.status_code == 200, quotas.text
            job = httpx.post(
                f"{base}/v1/drafts",
                json={
                    "kind": "synthese",
                    "source_text": french_source(9_000),
                    "model_group": "synthese",
                },
                headers=agent,
                timeout=30,
            )
            assert job.status_code == 202, job.text

            def stream() -> None:
                with (
                    contextlib.suppress(httpx.HTTPError),
                    httpx.stream(
                        "POST",
                        f"{base}/v1/chat/completions",
                        json={"messages": [{"role": "user", "content": "?"}], "stream": True},
                        headers={**agent, "Idempotency-Key": "coupee"},
                        timeout=60,
                    ) as response,
                ):
                    for _ in response.iter_lines():
                        pass

            client = threading.Thread(target=stream, daemon=True)
            client.start()
            deadline = time.monotonic() + 30
            # The stream under way, and the job past its first part.
            while paced.calls["trickle"] == 0 or paced.calls["pause"] < 2:
                assert time.monotonic() < deadline, dict(paced.calls)
                time.sleep(0.05)
            server.send_signal(signal.SIGTERM)
            assert server.wait(timeout=30) == 0
            client.join(timeout=10)
        finally:
            if server.poll() is None:
                server.kill()
                server.wait()

    with psycopg.connect(committed_database_url.replace("+psycopg", "")) as db:
        records = db.execute(
            "SELECT kind, outcome, error_code, charged, completion_tokens > 0"
            " FROM usage_records WHERE organization_id = %s ORDER BY kind",
            (commune_id,),
        ).fetchall()
        held = db.execute(
            "SELECT count(*) FROM quota_reservations WHERE organization_id = %s", (commune_id,)
        ).fetchone()
        claims = db.execute(
            "SELECT count(*) FROM idempotency_keys WHERE organization_id = %s", (commune_id,)
        ).fetchone()
        draft = db.execute(
            "SELECT status, locked_until, lease_token FROM drafts WHERE id = %s",
            (job.json()["id"],),
        ).fetchone()
    assert records == [
        ("chat", "client_disconnected", None, True, True),
        ("synthese", "failure", "interrupted", True, True),
    ]
    assert held == (0,)
    assert claims == (0,)  # the stream's key is free: a retry runs it again
    assert draft == ("processing", None, None)  # given back, for another process
