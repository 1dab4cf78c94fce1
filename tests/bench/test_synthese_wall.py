"""Benchmark: a 300-page synthèse at the provider's speed.

A 900 KB French source, cut into parts that fit the default 8,192-token window, is summarised
through `plume serve` against a provider that answers every call after a fixed delay. Printed:
the wall time from the request to the draft, the provider calls, and the ratio of the wall
time to calls × delay (1.0: no overlap at all; the target at 8 parts at once is ≤ 0.2), with
the parts one at a time (PLUME_SYNTHESE_CONCURRENCY=1, as before) and eight at a time, with
pseudonymisation off (the operator's `personal_data: allow`) and on (its default).
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.drafting.helpers import french_source
from tests.support.database import DatabaseServer
from tests.support.factories import fresh_insee
from tests.support.processes import PLUME, run_plume, wait_until_ready
from tests.support.providers import FakeProvider, deployment, group, routing_yaml
from tests.support.servers import free_port, serve_in_thread
from tests.support.settings import TEST_SECRET

pytestmark = pytest.mark.bench

DELAY_S = 0.3
SOURCE_CHARS = 900_000


@dataclass
class Plume:
    base: str
    key: str
    database_url: str


@pytest.fixture(scope="module")
def provider() -> Iterator[FakeProvider]:
    fake = FakeProvider(slow_seconds=DELAY_S)
    with serve_in_thread(fake.app, fake.port):
        yield fake


@pytest.fixture(scope="module")
def database(database_server: DatabaseServer) -> str:
    return database_server.create()


@pytest.fixture(scope="module")
def commune_key(database: str, provider: FakeProvider) -> Iterator[tuple[dict[str, str], str]]:
    with tempfile.TemporaryDirectory() as tmp:
        models = Path(tmp) / "models.yaml"
        slow = deployment("slow", provider.api_base, timeout_s=30, price=(0.1, 0.3))
        standard = group("standard", slow, default=True, max_output_tokens=1024)
        models.write_text(routing_yaml(standard, num_retries=1))
        env = {
            **os.environ,
            "PLUME_ENV": "production",
            "PLUME_METRICS_TOKEN": "metrics-token-for-the-bench",
            "PLUME_DATABASE_URL": database,
            "PLUME_SECRET_KEY": TEST_SECRET,
            "PLUME_MODELS_FILE": str(models),
        }
        run_plume(env, "bootstrap")
        insee = fresh_insee()
        run_plume(
            env, "orgs", "create", "--kind", "commune", "--name", "Commune de mesure",
            "--insee-code", insee,
        )  # fmt: skip
        key = run_plume(
            env, "keys", "create", "--organization", insee, "--role", "agent", "--name", "bench"
        )
        yield env, key


def serve(env: dict[str, str], concurrency: int, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen(
        [PLUME, "serve", "--port", str(port)],
        env={**env, "PLUME_SYNTHESE_CONCURRENCY": str(concurrency)},
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    wait_until_ready(f"{base}/healthz", process)
    return process, base


def set_personal_data(database_url: str, mode: str) -> None:
    """The operator's own policy (the bench's throw-away database, as its superuser)."""
    with psycopg.connect(database_url.replace("+psycopg", "")) as db:
        db.execute(
            "UPDATE organizations SET policy = policy || %s::jsonb WHERE kind = 'operator'",
            (json.dumps({"personal_data": mode}),),
        )


def synthesise(base: str, key: str, source: str) -> tuple[float, dict[str, object]]:
    body = {"kind": "synthese", "source_text": source, "stream": True}
    started = time.perf_counter()
    with httpx.Client(base_url=base, timeout=600) as client:
        response = client.post("/v1/drafts", json=body, headers={"Authorization": f"Bearer {key}"})
    elapsed = time.perf_counter() - started
    response.raise_for_status()
    blocks = [b for b in response.text.split("\n\n") if b.startswith("event: draft")]
    assert len(blocks) == 1, response.text[-500:]
    draft = json.loads(blocks[0].split("data: ", 1)[1])
    return elapsed, draft


def test_a_300_page_synthese_at_the_providers_speed(
    provider: FakeProvider, commune_key: tuple[dict[str, str], str], database: str
) -> None:
    env, key = commune_key
    source = french_source(SOURCE_CHARS, seed=3)
    rows: list[tuple[str, int, int, float, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for personal_data in ("allow", "pseudonymise"):
            set_personal_data(database, personal_data)
            for concurrency in (1, 8):
                process, base = serve(env, concurrency, Path(tmp) / "plume.log")
                try:
                    synthesise(base, key, french_source(20_000, seed=1))  # warm-up
                    before = provider.calls["slow"]
                    elapsed, draft = synthesise(base, key, source)
                    calls = provider.calls["slow"] - before
                finally:
                    process.terminate()
                    process.wait(timeout=60)
                assert draft["status"] == "draft", draft
                ratio = elapsed / (calls * DELAY_S)
                rows.append((personal_data, concurrency, calls, elapsed, ratio))

    delay_ms = DELAY_S * 1000
    print(f"\n== A {SOURCE_CHARS // 1000} KB synthèse, provider answering in {delay_ms:.0f} ms ==")
    print("| pseudonymisation | parts at once | calls | wall (s) | wall / (calls × delay) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for personal_data, concurrency, calls, elapsed, ratio in rows:
        label = "off (allow)" if personal_data == "allow" else "on"
        print(f"| {label} | {concurrency} | {calls} | {elapsed:.2f} | {ratio:.2f} |")
    assert all(calls > 30 for _, _, calls, _, _ in rows)
