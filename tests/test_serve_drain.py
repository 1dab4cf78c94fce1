"""`plume serve` on SIGTERM: stops accepting, lets an in-flight request finish, exits 0."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import httpx

from tests.support.factories import fresh_insee
from tests.support.processes import PLUME, run_plume, wait_until_ready
from tests.support.providers import running_fake_provider
from tests.support.servers import free_port
from tests.support.settings import TEST_SECRET


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
