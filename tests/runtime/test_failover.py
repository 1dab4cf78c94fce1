"""A database failover under load: the primary stops dead, its streaming replica is
promoted, and Plume — one `plume serve` process given both hosts in its URL — carries on
without a restart.

What an operator relies on: no request answered 500 (a 503 with problem+json, only around
the failover, is the service saying « try again »); Plume answers 2xx again within seconds of
the promotion; no commune spends past its quota; every request answered 2xx left its usage
record on the new primary (the replica is synchronous: a commit waits for it), none twice;
every 503, retried with its Idempotency-Key, is replayed if its request was charged all the
same (never charged again), or runs anew if it was not; every audit chain still verifies.

The PostgreSQL servers are the machine's own binaries (/usr/lib/postgresql/*/bin), two
throw-away clusters; the provider is the fake one, in its own process.
"""

from __future__ import annotations

import asyncio
import glob
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
import pytest
from psycopg import sql

from tests.support.books import Tally, check_the_books, is_error_shape
from tests.support.factories import fresh_insee
from tests.support.processes import PLUME, ROOT, run_plume, wait_until_ready
from tests.support.servers import free_port
from tests.support.settings import TEST_SECRET

# Slow lane: two PostgreSQL clusters, a provider and `plume serve`, about 40 s.
pytestmark = pytest.mark.slow

GROUP = "rapide"
REPLICA = "plume_replica"
OWNER, SERVICE, DATABASE = "plume_owner", "plume_service", "plume"
# The load: loops sending requests from every commune at once, for this long, the primary
# stopped this far into it.
LOOPS, LOAD_S, FAILOVER_AT_S, RECOVERY_BUDGET_S = 10, 20.0, 6.0, 30.0
# Each commune's quota: `requests` per day. The first is reached during the run (its
# requests are refused 429 once it is), the others are not.
LIMITS = (80, 100_000, 100_000)
ALLOWED = {200, 201, 429, 502, 503}
CHAT = {"model": GROUP, "messages": [{"role": "user", "content": "Rédige une phrase de test."}]}
COURRIER = {
    "kind": "courrier",
    "subject": "Réponse à votre signalement d'une haie qui déborde",
    "recipient": {"name": "M. Olivier Duhamel", "address": "12 route de la Chapelle"},
    "points": ["Remercier M. Duhamel de son signalement.", "Indiquer la suite donnée."],
    "tone": "cordial",
    "signatory": {"name": "Nathalie Leprévost", "title": "Maire"},
}


def _postgres_bin() -> Path | None:
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4])
    )
    return Path(found[-1]).parent if found else None


def _can_run_postgres() -> bool:
    """PostgreSQL's binaries are here, and (as root) a `postgres` user to run them as."""
    if _postgres_bin() is None:
        return False
    if os.geteuid() != 0:
        return True
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return False
    return shutil.which("runuser") is not None


BIN = _postgres_bin()


class Cluster:
    """One PostgreSQL cluster in a directory of its own, listening on 127.0.0.1 only.

    PostgreSQL refuses to run as root: a root test runs its binaries as `postgres`.
    """

    def __init__(self, directory: Path, port: int) -> None:
        self.data = directory / f"pg{port}"
        self.port = port

    def run(self, tool: str, *args: str, timeout: float = 60) -> str:
        assert BIN is not None
        command = [str(BIN / tool), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(
            command, check=False, capture_output=True, text=True, timeout=timeout
        )
        assert result.returncode == 0, f"{tool}: {result.stderr[-2000:]}"
        return result.stdout

    def settings(self) -> str:
        return (
            f"port = {self.port}\n"
            "listen_addresses = '127.0.0.1'\n"
            f"unix_socket_directories = '{self.data}'\n"
        )

    def initdb(self) -> None:
        self.run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                self.settings() + "wal_level = replica\nhot_standby = on\n"
                "max_wal_senders = 5\nmax_connections = 100\n"
            )
        with (self.data / "pg_hba.conf").open("a") as hba:
            hba.write("host replication all 127.0.0.1/32 trust\n")

    def base_backup_of(self, primary: Cluster) -> None:
        """A copy of `primary` that streams from it as a hot standby named REPLICA."""
        self.run(
            "pg_basebackup",
            *("-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres"),
            *("-D", str(self.data), "-R", "-X", "stream", "--checkpoint=fast"),
        )
        with (self.data / "postgresql.auto.conf").open("a") as conf:
            conf.write(
                self.settings() + "primary_conninfo = 'host=127.0.0.1"
                f" port={primary.port} user=postgres application_name={REPLICA}'\n"
            )

    def start(self) -> None:
        self.run("pg_ctl", "-D", str(self.data), "-l", str(self.data / "log"), "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self.run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def promote(self) -> None:
        self.run("pg_ctl", "-D", str(self.data), "-w", "promote")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def url(self, user: str = "postgres", database: str = "postgres") -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{database}"


@contextmanager
def cluster_directory(tmp_path: Path) -> Iterator[Path]:
    """tmp_path, or as root a directory `postgres` may enter (pytest's are root's only)."""
    if os.geteuid() != 0:
        yield tmp_path
        return
    directory = Path(tempfile.mkdtemp(prefix="plume-failover-"))
    shutil.chown(directory, "postgres", "postgres")
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@dataclass
class FailoverTally(Tally):
    """What the clients saw, and when the service came back."""

    # (commune key, Idempotency-Key, draft?) of every 503: retried once the load is over.
    to_retry: list[tuple[str, str, str, bool]] = field(default_factory=list)
    promoted_at: float | None = None
    first_success_after_promotion: float | None = None


async def _load(
    base: str,
    communes: list[tuple[str, str]],
    tally: FailoverTally,
    stop_at: float,
    failover: asyncio.Task[None],
) -> None:
    """LOOPS loops, each sending drafts and chat completions for one commune in turn."""

    async def loop(index: int) -> None:
        commune_id, key = communes[index % len(communes)]
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            sent = 0
            while time.monotonic() < stop_at or (
                failover.done() and tally.first_success_after_promotion is None
            ):
                request_id = f"failover-{uuid.uuid4().hex}"  # also its Idempotency-Key
                draft = (sent + index) % 2 == 0
                sent += 1
                try:
                    answer = await http.post(
                        "/v1/drafts" if draft else "/v1/chat/completions",
                        json=COURRIER if draft else CHAT,
                        headers={
                            **headers,
                            "X-Request-ID": request_id,
                            "Idempotency-Key": request_id,
                        },
                    )
                except httpx.TransportError as error:
                    tally.transport_errors.append(repr(error))
                    await asyncio.sleep(0.05)
                    continue
                tally.statuses[answer.status_code] += 1
                if answer.status_code not in ALLOWED:
                    tally.unexpected.append(f"{answer.status_code} {answer.text[:300]}")
                elif answer.status_code >= 400 and not is_error_shape(answer, draft=draft):
                    tally.unexpected.append(
                        f"{answer.status_code} {answer.headers.get('content-type')}:"
                        f" {answer.text[:300]}"
                    )
                if answer.is_success:
                    assert answer.headers["x-request-id"] == request_id
                    tally.answered.setdefault(commune_id, set()).add(request_id)
                    if (
                        tally.promoted_at is not None
                        and tally.first_success_after_promotion is None
                    ):
                        tally.first_success_after_promotion = time.monotonic()
                if answer.status_code == 503:
                    tally.unavailable.setdefault(commune_id, {})[request_id] = answer.text
                    tally.to_retry.append((key, request_id, commune_id, draft))
                if answer.status_code in (429, 502, 503):
                    await asyncio.sleep(0.05)
                if time.monotonic() > stop_at + RECOVERY_BUDGET_S:
                    return

    await asyncio.gather(*(loop(i) for i in range(LOOPS)))


@pytest.mark.skipif(
    # In CI (PLUME_REQUIRE_TOOLS=1) a missing PostgreSQL is a failure, not a skip.
    not _can_run_postgres() and os.environ.get("PLUME_REQUIRE_TOOLS") != "1",
    reason="no PostgreSQL binaries in /usr/lib/postgresql to run",
)
def test_plume_survives_a_failover_to_its_synchronous_replica(tmp_path: Path) -> None:
    with cluster_directory(tmp_path) as directory:
        primary = Cluster(directory, free_port())
        replica = Cluster(directory, free_port())
        provider_port, port = free_port(), free_port()
        models = tmp_path / "models.yaml"
        models.write_text(
            "model_groups:\n"
            f"  - name: {GROUP}\n"
            "    default: true\n"
            "    deployments:\n"
            "      - model: openai/okfast\n"
            f"        api_base: http://127.0.0.1:{provider_port}/v1\n"
            "        hosting: fr\n"
            "        price_per_million_tokens: {input: 0.1, output: 0.3}\n"
        )
        processes: list[subprocess.Popen[bytes]] = []
        try:
            primary.initdb()
            primary.start()
            _make_roles_and_database(primary)
            base_env = {
                **{k: v for k, v in os.environ.items() if not k.startswith("PLUME_")},
                "PLUME_ENV": "test",
                "PLUME_SECRET_KEY": TEST_SECRET,
                "PLUME_MODELS_FILE": str(models),
                "PLUME_STATE_DIR": str(tmp_path),
            }

            def env_for(url: str) -> dict[str, str]:
                return {**base_env, "PLUME_DATABASE_URL": url}

            # The migrations by the database's owner, the rest by the serving role.
            run_plume(env_for(primary.url(OWNER, DATABASE)), "migrate")
            with psycopg.connect(primary.url(), autocommit=True) as admin:
                admin.execute(sql.SQL("GRANT plume_app TO {}").format(sql.Identifier(SERVICE)))
            on_primary = env_for(primary.url(SERVICE, DATABASE))
            operator_key = run_plume(on_primary, "bootstrap")
            communes: list[tuple[str, str]] = []
            for number in range(len(LIMITS)):
                insee = fresh_insee()
                created = run_plume(
                    on_primary,
                    *("orgs", "create", "--kind", "commune", "--name", f"Commune {number}"),
                    *("--insee-code", insee),
                )
                key = run_plume(
                    on_primary,
                    *("keys", "create", "--organization", insee, "--role", "agent"),
                    *("--name", "charge"),
                )
                # `orgs create` prints: id, kind, slug, name (tab-separated).
                communes.append((created.split("\t")[0], key))

            replica.base_backup_of(primary)
            replica.start()
            _make_replication_synchronous(primary)

            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "tests.support.providers", str(provider_port)],
                    cwd=ROOT,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
            # Both hosts; libpq takes the first that accepts writes.
            both = (
                f"postgresql+psycopg://{SERVICE}@/{DATABASE}?host=127.0.0.1:{primary.port}"
                f"&host=127.0.0.1:{replica.port}&target_session_attrs=read-write"
            )
            log = (tmp_path / "plume.log").open("wb")
            processes.append(
                subprocess.Popen(
                    [PLUME, "serve", "--port", str(port)],
                    env=env_for(both),
                    stdout=log,
                    stderr=log,
                )
            )
            base = f"http://127.0.0.1:{port}"
            wait_until_ready(f"http://127.0.0.1:{provider_port}/v1/models", processes[0])
            wait_until_ready(f"{base}/readyz", processes[1])
            operator = {"Authorization": f"Bearer {operator_key}"}
            for (commune_id, _), limit in zip(communes, LIMITS, strict=True):
                quotas = httpx.put(
                    f"{base}/v1/admin/organizations/{commune_id}/quotas",
                    json=[{"metric": "requests", "period": "day", "limit": limit}],
                    headers=operator,
                )
                assert quotas.status_code == 200, quotas.text
            # Its first provider call loads the pseudonymisation model (seconds): not the
            # failover's doing, so done before the load (a commune far from its quota).
            warm = httpx.post(
                f"{base}/v1/chat/completions",
                json=CHAT,
                headers={"Authorization": f"Bearer {communes[1][1]}"},
                timeout=120,
            )
            assert warm.status_code == 200, warm.text

            tally = FailoverTally()
            stopped_at, recovered = asyncio.run(
                _run_with_failover(base, communes, tally, primary, replica)
            )
            _report(tally, stopped_at, recovered)

            assert not tally.unexpected, tally.unexpected[:5]
            assert tally.first_success_after_promotion is not None, "no 2xx after promotion"
            assert tally.first_success_after_promotion - recovered < RECOVERY_BUDGET_S
            assert processes[1].poll() is None, "plume serve exited"
            _check_the_books(replica, communes, tally, base)
            verified = run_plume(env_for(replica.url(SERVICE, DATABASE)), "audit", "verify")
            print(f"  audit chains on the new primary:\n{verified}")
            assert verified, "no audit chain verified"
            assert "INVALID" not in verified, verified
        finally:
            for process in reversed(processes):
                process.terminate()
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            for cluster in (replica, primary):
                if cluster.running():
                    cluster.stop("immediate")


def _make_roles_and_database(primary: Cluster) -> None:
    """An owner who may create roles and nothing more, a serving role that owns nothing
    (docs/decisions/0008)."""
    with psycopg.connect(primary.url(), autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN CREATEROLE").format(sql.Identifier(OWNER)))
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(SERVICE)))
        admin.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(DATABASE), sql.Identifier(OWNER)
            )
        )


def _make_replication_synchronous(primary: Cluster) -> None:
    """Commits wait for the replica from now on; once it streams, in sync."""
    with psycopg.connect(primary.url(), autocommit=True) as admin:
        admin.execute(f"ALTER SYSTEM SET synchronous_standby_names = '{REPLICA}'")
        admin.execute("SELECT pg_reload_conf()")
        deadline = time.monotonic() + 30
        while True:
            row = admin.execute(
                "SELECT sync_state, state FROM pg_stat_replication WHERE application_name = %s",
                (REPLICA,),
            ).fetchone()
            if row == ("sync", "streaming"):
                return
            assert time.monotonic() < deadline, f"the replica is not in sync: {row}"
            time.sleep(0.1)


async def _run_with_failover(
    base: str,
    communes: list[tuple[str, str]],
    tally: FailoverTally,
    primary: Cluster,
    replica: Cluster,
) -> tuple[float, float]:
    """The load, and in the middle of it the primary stopped dead and the replica promoted;
    when the primary stopped and when the promotion finished (monotonic)."""
    started = time.monotonic()
    moments: list[float] = []

    async def failover() -> None:
        await asyncio.sleep(FAILOVER_AT_S)
        await asyncio.to_thread(primary.stop, "immediate")
        moments.append(time.monotonic())
        await asyncio.to_thread(replica.promote)
        tally.promoted_at = time.monotonic()
        moments.append(tally.promoted_at)

    task = asyncio.create_task(failover())
    await _load(base, communes, tally, started + LOAD_S, task)
    await task
    return moments[0], moments[1]


def _check_the_books(
    replica: Cluster, communes: list[tuple[str, str]], tally: FailoverTally, base: str
) -> None:
    """On the new primary, the books (tests/support/books.py); then every 503 retried with
    its Idempotency-Key: one whose request was charged all the same (its settlement reached
    the new primary) gets the recorded answer, replayed, and is not charged again; one that
    was not runs anew. The books still hold after the retries."""
    admin_url = replica.url(database=DATABASE)
    limits = [(commune_id, limit) for (commune_id, _), limit in zip(communes, LIMITS, strict=True)]
    books = check_the_books(admin_url, limits, tally)
    charged_503 = {
        request_id
        for commune_id, unavailable in tally.unavailable.items()
        for request_id in unavailable
        if books[commune_id].charged(request_id)
    }
    replayed, anew = 0, Counter[int]()
    for key, request_id, _, draft in tally.to_retry:
        answer = httpx.post(
            f"{base}/v1/drafts" if draft else f"{base}/v1/chat/completions",
            json=COURRIER if draft else CHAT,
            headers={
                "Authorization": f"Bearer {key}",
                "X-Request-ID": f"retry-{request_id}",
                "Idempotency-Key": request_id,
            },
            timeout=30,
        )
        if request_id in charged_503:
            assert answer.is_success, f"a charged 503 retried: {answer.status_code} {answer.text}"
            assert answer.headers.get("idempotency-replayed") == "true", answer.headers
            replayed += 1
        else:
            # 409: its claim outlived a settlement that never reached the new primary; it
            # lapses with the call's deadline. Never a second charge either way.
            assert answer.status_code in (200, 201, 409, 429), answer.text
            anew[answer.status_code] += 1
    print(
        f"  503 answers {sum(len(u) for u in tally.unavailable.values())}, of which charged"
        f" {len(charged_503)}; retried with their Idempotency-Key: {replayed} replayed"
        f" (not charged again), {dict(anew)} run anew"
    )
    after = check_the_books(admin_url, limits, tally)
    for commune_id, records in after.items():
        again = [r for r in records.outcomes if r.startswith("retry-") and r[6:] in charged_503]
        assert not again, f"{commune_id}: charged 503s charged again on retry: {again[:3]}"


def _report(tally: FailoverTally, stopped_at: float, promoted_at: float) -> None:
    successes = sum(n for status, n in tally.statuses.items() if 200 <= status < 300)
    others = sum(tally.statuses.values()) - successes - tally.statuses[503]
    recovery = (
        f"{tally.first_success_after_promotion - promoted_at:.2f} s"
        if tally.first_success_after_promotion is not None
        else "never"
    )
    print(
        f"\n== failover ==\n  answers: {dict(sorted(tally.statuses.items()))}"
        f"\n  2xx {successes}, 503 {tally.statuses[503]}, others {others}"
        f" (429 {tally.statuses[429]}), transport errors {len(tally.transport_errors)}"
        f"\n  without a primary: {promoted_at - stopped_at:.2f} s"
        f"\n  first 2xx after the promotion: {recovery}"
    )
