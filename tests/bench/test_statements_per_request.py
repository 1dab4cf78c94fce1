"""Benchmark: PostgreSQL statements per request, for the capacity model
(docs/operations.md#capacity-model).

One in-process application on a fresh database (a commune and its EPCI, an agent key), the
fake provider in its own process. Counts the statements the application sends (every
psycopg `cursor.execute`: SQLAlchemy's, those Plume sends on the driver connection, its own
`BEGIN` and `COMMIT` included, and the pool's ping of a connection it hands out; the
driver's own `BEGIN` is not one), the round trips — the times the client waits for the
server: each `Sync` or simple `Query` message in libpq's trace of the connections — and the
transactions committed by a `COMMIT` (a session's or Plume's own; a statement sent alone on
a connection in autocommit mode is a transaction too, not counted), for a chat completion,
an arrêté (both through the fake provider), a draft read and a listing.
Prints the table; nothing is asserted beyond each request succeeding. `make bench` runs it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import psycopg
import pytest
from psycopg.pq import ConnStatus, Trace
from sqlalchemy import event

from plume.app import create_app
from plume.db import create_engine, create_session_factory
from tests.bench.inprocess import CHAT, Setup, bench_setup, serving
from tests.support.database import DatabaseServer
from tests.support.settings import make_settings

pytestmark = pytest.mark.bench

ROUNDS = 20
ARRETE = {
    "kind": "arrete",
    "subject": "Stationnement interdit place de la Mairie pour le marché de Noël",
    "context": "Le marché de Noël se tient le 12 décembre 2027 place de la Mairie.",
    "provisions": [
        "Le 12 décembre 2027, de 6 h à 20 h, le stationnement est interdit place de la Mairie."
    ],
}


class RoundTrips:
    """libpq's trace of every connection the pool opens; a round trip is a message after
    which the client waits for the server's answer (`Sync`, or a simple `Query`)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.traced: list[tuple[Any, Path, IO[str]]] = []

    def connected(self, dbapi_connection: Any, _record: Any) -> None:
        pgconn = dbapi_connection.driver_connection.pgconn
        path = self.directory / f"connection-{len(self.traced)}.trace"
        handle = path.open("a")
        self.traced.append((pgconn, path, handle))
        self._trace(pgconn, handle)

    @staticmethod
    def _trace(pgconn: Any, handle: IO[str]) -> None:
        pgconn.trace(handle.fileno())
        pgconn.set_trace_flags(Trace.SUPPRESS_TIMESTAMPS)

    def count(self) -> int:
        """Round trips so far, on every connection (each trace flushed, then resumed)."""
        total = 0
        for pgconn, path, handle in self.traced:
            if pgconn.status == ConnStatus.OK:
                pgconn.untrace()
                self._trace(pgconn, handle)
            for line in path.read_text().splitlines():
                fields = line.split("\t")
                if fields[0] == "F" and len(fields) > 2 and fields[2] in ("Sync", "Query"):
                    total += 1
        return total


@pytest.fixture(scope="module")
def setup(
    database_server: DatabaseServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Setup]:
    with bench_setup(database_server, tmp_path_factory.mktemp("statements-bench")) as ready:
        yield ready


async def test_statements_per_request(
    setup: Setup, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    settings = make_settings(setup.database_url, models_file=setup.models_file)
    engine = create_engine(setup.database_url, pool_size=4)
    counts: Counter[str] = Counter()
    execute = psycopg.AsyncCursor.execute

    async def _statement(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        counts["statements"] += 1
        if isinstance(query, str) and query.strip().upper() == "COMMIT":
            counts["commits"] += 1  # a transaction Plume sends on the driver
        return await execute(self, query, *args, **kwargs)

    monkeypatch.setattr(psycopg.AsyncCursor, "execute", _statement)

    @event.listens_for(engine.sync_engine, "commit")
    def _commit(*_: Any) -> None:
        counts["commits"] += 1

    trips = RoundTrips(tmp_path)
    event.listen(engine.sync_engine, "connect", trips.connected)

    app = create_app(settings, session_factory=create_session_factory(engine))
    headers = {"Authorization": f"Bearer {setup.agent_key}"}
    rows: list[tuple[str, float, float, float]] = []
    async with serving({"plume": app}) as clients:
        http = clients["plume"]
        draft = await http.post("/v1/drafts", headers=headers, json=ARRETE)
        assert draft.status_code == 201, draft.text
        draft_id = draft.json()["id"]
        requests = {
            "POST /v1/chat/completions": lambda: http.post(
                "/v1/chat/completions", headers=headers, json=CHAT
            ),
            "POST /v1/drafts (arrêté)": lambda: http.post(
                "/v1/drafts", headers=headers, json=ARRETE
            ),
            "GET /v1/drafts/{id}": lambda: http.get(f"/v1/drafts/{draft_id}", headers=headers),
            "GET /v1/drafts": lambda: http.get("/v1/drafts", headers=headers),
        }
        for name, send in requests.items():
            await send()  # warm
            counts.clear()
            before = trips.count()
            for _ in range(ROUNDS):
                response = await send()
                assert response.status_code in (200, 201), response.text
            round_trips = (trips.count() - before) / ROUNDS
            rows.append(
                (name, counts["statements"] / ROUNDS, round_trips, counts["commits"] / ROUNDS)
            )
    await engine.dispose()
    print("\n== PostgreSQL per request (in-process, one application) ==")
    print(f"  {'request':32} {'statements':>10} {'round trips':>11} {'commits':>8}")
    for name, statements, round_trips, commits in rows:
        print(f"  {name:32} {statements:10.1f} {round_trips:11.1f} {commits:8.1f}")
