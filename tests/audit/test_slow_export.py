"""Slow readers of the audit export cannot take a server's database connections away from
everyone else (finding H-1): `plume serve` with a small pool, a chain of several megabytes,
twenty-five clients reading its export a byte a second, and another tenant's draft still
answered at once, with no connection left idle in a transaction."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest

from plume.db import create_engine, create_session_factory
from tests.support.factories import Factory
from tests.support.processes import PLUME, wait_until_ready
from tests.support.servers import free_port
from tests.support.settings import TEST_SECRET

pytestmark = pytest.mark.slow

READERS = 25
ENTRIES = 12_000  # about 8 MB of JSON lines
# The smallest pool: two connections, and as many again in overflow.
POOL_SIZE = 2

ARTICLE = {
    "kind": "bulletin_article",
    "subject": "Réouverture du lavoir",
    "key_points": ["samedi 10 h", "visite commentée"],
}


@dataclass
class Tenants:
    exporting: str  # the tenant admin whose chain is long
    exporting_id: str
    drafting: str  # another tenant's agent


async def _tenants(database_url: str) -> Tenants:
    engine = create_engine(database_url, pool_size=1)
    try:
        async with create_session_factory(engine)() as session, session.begin():
            factory = Factory(session, TEST_SECRET)
            exporting = await factory.commune("Commune aux archives")
            admin = await factory.key(exporting, "tenant_admin")
            agent = await factory.key(await factory.commune("Commune pressée"), "agent")
    finally:
        await engine.dispose()
    return Tenants(admin.secret, str(exporting.id), agent.secret)


def _grow_chain(database_url: str, organization_id: str) -> None:
    """Append ENTRIES entries to the chain, as many refused requests would."""
    body = json.dumps({"action": "access.denied", "details": {"path": "/v1/drafts/" + "x" * 400}})
    with psycopg.connect(database_url.replace("+psycopg", "")) as connection:
        # The system's scope: appending is for chains of the transaction's scope only.
        connection.execute("SELECT set_config('plume.all_organizations', 'on', true)")
        row = connection.execute(
            "SELECT count(*) FROM (SELECT audit_append(%(org)s, now(), 'access.denied', NULL,"
            " 'agent', %(body)s) FROM generate_series(1, %(n)s)) AS appended",
            {"n": ENTRIES, "org": organization_id, "body": body},
        ).fetchone()
    assert row == (ENTRIES,)


def _held_in_transaction(database_url: str) -> int:
    """Connections of the server idle inside a transaction begun five seconds ago or more:
    an export that held one for its download would have begun it when its reader connected
    (eight seconds before the check); a batch's own transaction lasts a moment, even when a
    loaded machine stretches that moment past a second."""
    with psycopg.connect(database_url.replace("+psycopg", "")) as connection:
        row = connection.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND state LIKE 'idle in transaction%%'"
            " AND xact_start < now() - interval '5 seconds'"
        ).fetchone()
    assert row is not None
    return int(row[0])


class SlowReader(threading.Thread):
    """A raw-socket client that asks for the export and reads it a byte a second."""

    def __init__(self, port: int, key: str, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.port, self.key, self.stop = port, key, stop
        self.received = b""

    def run(self) -> None:
        with socket.socket() as client:
            # A small window: the server's buffers fill after a few hundred kilobytes.
            client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            client.connect(("127.0.0.1", self.port))
            client.sendall(
                b"GET /v1/audit/export?format=jsonl HTTP/1.1\r\nHost: plume\r\n"
                + f"Authorization: Bearer {self.key}\r\n\r\n".encode()
            )
            while not self.stop.is_set():
                self.received += client.recv(1)
                self.stop.wait(1)


@pytest.fixture
def server(committed_database_url: str, tmp_path: Path) -> Iterator[int]:
    models = tmp_path / "models.yaml"
    models.write_text(
        "model_groups:\n"
        "  - name: offline\n"
        "    deployments:\n"
        "      - model: plume_offline/offline\n"
        "        hosting: fr\n"
        "        price_per_million_tokens: {input: 0, output: 0}\n"
    )
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PLUME_")},
        "PLUME_ENV": "test",
        "PLUME_DATABASE_URL": committed_database_url,
        "PLUME_SECRET_KEY": TEST_SECRET,
        "PLUME_MODELS_FILE": str(models),
        "PLUME_DB_POOL_SIZE": str(POOL_SIZE),
        "PLUME_STATE_DIR": str(tmp_path),
    }
    port = free_port()
    process = subprocess.Popen(
        [PLUME, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until_ready(f"http://127.0.0.1:{port}/healthz", process)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def test_slow_export_readers_do_not_stop_another_tenants_draft(
    committed_database_url: str, server: int
) -> None:
    tenants = await _tenants(committed_database_url)
    _grow_chain(committed_database_url, tenants.exporting_id)
    stop = threading.Event()
    readers = [SlowReader(server, tenants.exporting, stop) for _ in range(READERS)]
    try:
        for reader in readers:
            reader.start()
        # Every export has started, filled the buffers between it and its reader, and
        # waits for the reader: what used to hold a connection, in a transaction, each.
        await asyncio.sleep(8)
        assert all(reader.received for reader in readers)
        async with httpx.AsyncClient(timeout=30) as http:
            started = time.perf_counter()
            draft = await http.post(
                f"http://127.0.0.1:{server}/v1/drafts",
                json=ARTICLE,
                headers={"Authorization": f"Bearer {tenants.drafting}"},
            )
            elapsed = time.perf_counter() - started
        assert draft.status_code == 201, draft.text
        # The pool's timeout is five seconds: a draft that waited for a connection would
        # have taken that long, then answered 503 (it answers in a fraction of a second on
        # an idle machine; the margin is for a loaded one).
        assert elapsed < 4, elapsed
        assert _held_in_transaction(committed_database_url) == 0
        assert all(reader.is_alive() for reader in readers)  # still reading, a byte a second
    finally:
        stop.set()
        for reader in readers:
            reader.join(timeout=5)
