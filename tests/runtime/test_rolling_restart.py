"""A rolling restart under load: two `plume serve` processes behind HAProxy, each in turn
stopped with SIGTERM, waited for (its drain), started again and waited for (ready), while
several communes send chat completions and drafts, plain and streamed. No request fails.

What makes it hold (docs/operations.md, « Redémarrage progressif »):
- on SIGTERM, /readyz answers 503 at once and the process goes on accepting for
  PLUME_DRAIN_DELAY_S: HAProxy's probe takes it out of rotation before its port closes;
  then uvicorn stops accepting and lets in-flight requests finish, a stream to its end;
- HAProxy retries (on the other server) what never reached a Plume process: a refused
  connection (`retry-on conn-failure`, never processed). After an empty response (a
  keep-alive connection closed as the drain began) it retries only requests that are safe
  to replay: those carrying an Idempotency-Key, which Plume answers from the recorded
  answer, charged once (`http-request disable-l7-retry` for the others).

Checked afterwards: every request answered 2xx (no 5xx, no connection error), each stopped
process exited 0 within its drain, no quota overspent, every 2xx recorded once, every
audit chain verifies.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.books import Tally, check_the_books
from tests.support.factories import fresh_insee
from tests.support.processes import PLUME, ROOT, run_plume, wait_until_ready
from tests.support.providers import deployment, group, routing_yaml
from tests.support.servers import free_port
from tests.support.settings import TEST_SECRET
from tests.support.tools import require_tool

# Slow lane: HAProxy, a provider and two `plume serve`, about a minute.
pytestmark = pytest.mark.slow

GROUP = "lent"
COMMUNES, LOOPS_PER_COMMUNE = 3, 3
LIMIT = 100_000  # requests a day: enforced (reserved, settled), never reached
PROVIDER_DELAY_S = 0.6  # every answer takes this long: requests are in flight at SIGTERM
# HAProxy's probe: every 300 ms, two failures take a server out, within the drain delay.
DRAIN_DELAY_S, DRAIN_TIMEOUT_S, SETTLE_S = 3.0, 20, 10
STEADY_S = 3.0  # load before, between and after the restarts
CHAT = {"model": GROUP, "messages": [{"role": "user", "content": "Rédige une phrase de test."}]}
COURRIER = {
    "kind": "courrier",
    "subject": "Réponse à votre demande de stationnement pour un déménagement",
    "recipient": {"name": "Mme Claire Lemonnier", "address": "4 rue des Tilleuls"},
    "points": ["Accorder l'emplacement le samedi matin.", "Rappeler le panneau à poser."],
    "tone": "cordial",
    "signatory": {"name": "Nathalie Leprévost", "title": "Maire"},
}
# (path, body, streamed) in turn.
KINDS = [
    ("/v1/chat/completions", CHAT, False),
    ("/v1/chat/completions", {**CHAT, "stream": True}, True),
    ("/v1/drafts", COURRIER, False),
    ("/v1/drafts", {**COURRIER, "stream": True}, True),
]


def haproxy_config(port: int, servers: dict[str, int]) -> str:
    """HAProxy in front of the Plume processes (see the module's docstring)."""
    lines = "\n".join(
        f"    server {name} 127.0.0.1:{server_port} check" for name, server_port in servers.items()
    )
    return f"""global
    maxconn 512

defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    timeout check 2s
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response

frontend plume
    bind 127.0.0.1:{port}
    default_backend plumes

backend plumes
    balance roundrobin
    # Replayed after an empty response only if harmless: Plume answers a POST's retry with
    # the same Idempotency-Key from its record, charged once.
    http-request disable-l7-retry if METH_POST !{{ req.hdr(idempotency-key) -m found }}
    option httpchk GET /readyz
    http-check expect status 200
    default-server inter 300ms fall 2 rise 2
{lines}
"""


@dataclass
class Run:
    """The load's record: the tally, and per phase the statuses and the slowest answer."""

    tally: Tally = field(default_factory=Tally)
    phase: str = "before"
    by_phase: dict[str, Counter[int]] = field(default_factory=lambda: defaultdict(Counter))
    slowest: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    # (sent, answered) monotonic times of every request, to count those in flight at a signal.
    spans: list[tuple[float, float]] = field(default_factory=list)
    stopping: bool = False

    def in_flight_at(self, moment: float) -> int:
        return sum(1 for sent, answered in self.spans if sent < moment < answered)


def _complete(answer: httpx.Response, path: str, streamed: bool) -> bool:
    """A stream that went to its end: its last event was sent, not cut."""
    if not streamed:
        return True
    if path.endswith("completions"):
        return answer.text.rstrip().endswith("data: [DONE]")
    return "event: draft" in answer.text


async def _load(base: str, communes: list[tuple[str, str]], run: Run) -> None:
    async def loop(index: int) -> None:
        commune_id, key = communes[index % len(communes)]
        async with httpx.AsyncClient(base_url=base, timeout=60) as http:
            sent = index
            while not run.stopping:
                path, body, streamed = KINDS[sent % len(KINDS)]
                sent += 1
                request_id = f"rolling-{uuid.uuid4().hex}"
                headers = {
                    "Authorization": f"Bearer {key}",
                    "X-Request-ID": request_id,
                    "Idempotency-Key": request_id,
                }
                phase, started = run.phase, time.monotonic()
                try:
                    answer = await http.post(path, json=body, headers=headers)
                except httpx.TransportError as error:
                    run.tally.transport_errors.append(f"{phase} {path}: {error!r}")
                    await asyncio.sleep(0.05)
                    continue
                ended = time.monotonic()
                run.spans.append((started, ended))
                run.slowest[phase] = max(run.slowest[phase], ended - started)
                run.by_phase[phase][answer.status_code] += 1
                run.tally.statuses[answer.status_code] += 1
                if not answer.is_success or not _complete(answer, path, streamed):
                    run.tally.unexpected.append(
                        f"{phase} {path} stream={streamed} {answer.status_code}:"
                        f" {answer.text[-300:]}"
                    )
                    continue
                run.tally.answered.setdefault(commune_id, set()).add(request_id)

    await asyncio.gather(*(loop(i) for i in range(COMMUNES * LOOPS_PER_COMMUNE)))


@dataclass
class Plumes:
    """The Plume processes, by name, started and stopped as an operator would."""

    env: dict[str, str]
    ports: dict[str, int]
    logs: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str) -> None:
        log = (self.logs / f"plume-{name}.log").open("ab")
        self.processes[name] = subprocess.Popen(
            [PLUME, "serve", "--port", str(self.ports[name])],
            env=self.env,
            stdout=log,
            stderr=log,
        )

    def wait_ready(self, name: str) -> None:
        wait_until_ready(f"http://127.0.0.1:{self.ports[name]}/readyz", self.processes[name])

    def warm(self, name: str, key: str) -> None:
        """A process loads the French NER model (pseudonymisation) on its first provider
        call, which takes seconds: an operator's rollout waits for the new process to serve
        before it stops the next one, and so does this test (docs/operations.md)."""
        base = f"http://127.0.0.1:{self.ports[name]}"
        warm = httpx.post(
            f"{base}/v1/chat/completions",
            json=CHAT,
            headers={"Authorization": f"Bearer {key}"},
            timeout=120,
        )
        assert warm.status_code == 200, warm.text

    def stop_all(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()


async def _roll(
    plumes: Plumes, run: Run, drains: dict[str, tuple[int, float, int]], warm_key: str
) -> None:
    """Under the load: each process in turn stopped with SIGTERM, waited for, started
    again and waited for; the load then stops."""
    await asyncio.sleep(STEADY_S)
    names = list(plumes.ports)
    for name in names:
        process = plumes.processes[name]
        run.phase = f"drain {name}"
        signalled = time.monotonic()
        process.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(process.wait, DRAIN_DELAY_S + DRAIN_TIMEOUT_S + SETTLE_S)
        drains[name] = (code, time.monotonic() - signalled, run.in_flight_at(signalled))
        run.phase = f"restart {name}"
        plumes.start(name)
        await asyncio.to_thread(plumes.wait_ready, name)
        await asyncio.to_thread(plumes.warm, name, warm_key)
        run.phase = "after" if name == names[-1] else "between"
        await asyncio.sleep(STEADY_S)
    run.stopping = True


def test_a_rolling_restart_under_load_fails_no_request(
    committed_database_url: str, tmp_path: Path
) -> None:
    haproxy = require_tool("haproxy", what="HAProxy (paquet Debian haproxy)")
    provider_port, front = free_port(), free_port()
    models = tmp_path / "models.yaml"
    slow = deployment(
        "slow", f"http://127.0.0.1:{provider_port}/v1", timeout_s=20, price=(0.1, 0.3)
    )
    models.write_text(routing_yaml(group(GROUP, slow, default=True), num_retries=1))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PLUME_")},
        "PLUME_ENV": "test",
        "PLUME_DATABASE_URL": committed_database_url,
        "PLUME_SECRET_KEY": TEST_SECRET,
        "PLUME_MODELS_FILE": str(models),
        "PLUME_STATE_DIR": str(tmp_path),
        "PLUME_DRAIN_DELAY_S": str(DRAIN_DELAY_S),
        # Ready only with the pseudonymisation's model loaded, as the chart's pods are.
        "PLUME_WARM_UP": "true",
        "PLUME_DRAIN_TIMEOUT_S": str(DRAIN_TIMEOUT_S),
    }
    operator_key = run_plume(env, "bootstrap")
    communes: list[tuple[str, str]] = []
    for number in range(COMMUNES):
        insee = fresh_insee()
        created = run_plume(
            env,
            *("orgs", "create", "--kind", "commune", "--name", f"Roulement {number}"),
            *("--insee-code", insee),
        )
        key = run_plume(
            env, *("keys", "create", "--organization", insee, "--role", "agent", "--name", "r")
        )
        communes.append((created.split("\t")[0], key))

    plumes = Plumes(env, {"a": free_port(), "b": free_port()}, tmp_path)
    others: list[subprocess.Popen[bytes]] = []
    try:
        provider_args = (str(provider_port), str(PROVIDER_DELAY_S))
        others.append(
            subprocess.Popen(
                [sys.executable, "-m", "tests.support.providers", *provider_args],
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        for name in plumes.ports:
            plumes.start(name)
        config = tmp_path / "haproxy.cfg"
        config.write_text(haproxy_config(front, plumes.ports))
        check = subprocess.run(
            [haproxy, "-c", "-f", str(config)], capture_output=True, text=True, check=False
        )
        assert check.returncode == 0, check.stdout + check.stderr
        haproxy_log = (tmp_path / "haproxy.log").open("wb")
        others.append(
            subprocess.Popen(
                [haproxy, "-db", "-f", str(config)], stdout=haproxy_log, stderr=haproxy_log
            )
        )
        for name in plumes.ports:
            plumes.wait_ready(name)
        base = f"http://127.0.0.1:{front}"
        wait_until_ready(f"{base}/readyz", others[-1])
        time.sleep(1.0)  # both servers up in HAProxy's eyes (rise 2)
        for commune_id, _ in communes:
            quotas = httpx.put(
                f"{base}/v1/admin/organizations/{commune_id}/quotas",
                json=[{"metric": "requests", "period": "day", "limit": LIMIT}],
                headers={"Authorization": f"Bearer {operator_key}"},
            )
            assert quotas.status_code == 200, quotas.text
        for name in plumes.ports:
            plumes.warm(name, communes[0][1])

        run = Run()
        drains: dict[str, tuple[int, float, int]] = {}

        async def under_load() -> None:
            await asyncio.gather(
                _load(base, communes, run), _roll(plumes, run, drains, communes[0][1])
            )

        print("\n== rolling restart ==")
        asyncio.run(under_load())
        _report(run, drains)

        assert not run.tally.transport_errors, run.tally.transport_errors[:5]
        assert not run.tally.unexpected, run.tally.unexpected[:5]
        for name, (code, took, in_flight) in drains.items():
            assert in_flight > 0, f"no request in flight when {name} was signalled"
            assert code == 0, f"plume {name} exited {code} on SIGTERM"
            assert took < DRAIN_DELAY_S + DRAIN_TIMEOUT_S + SETTLE_S, f"{name}: {took:.1f} s"
        assert run.tally.successes() > 0
        admin_url = committed_database_url.replace("postgresql+psycopg://", "postgresql://", 1)
        check_the_books(admin_url, [(c, LIMIT) for c, _ in communes], run.tally)
        for commune_id, _ in communes:
            verified = run_plume(env, "audit", "verify", "--organization", commune_id)
            print(f"  audit: {verified}")
            assert "\tvalid\t" in verified, verified
    finally:
        plumes.stop_all()
        for process in reversed(others):
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _report(run: Run, drains: dict[str, Any]) -> None:
    print(f"  answers: {dict(sorted(run.tally.statuses.items()))}")
    print(f"  transport errors: {len(run.tally.transport_errors)}")
    for phase, statuses in run.by_phase.items():
        print(f"  {phase}: {dict(sorted(statuses.items()))}, slowest {run.slowest[phase]:.2f} s")
    for name, (code, took, in_flight) in drains.items():
        print(
            f"  {name}: {in_flight} requests in flight at SIGTERM; exit status {code}"
            f" {took:.2f} s after it"
        )
