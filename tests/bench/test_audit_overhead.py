"""Benchmark: what writing the audit entry adds to a request.

Two in-process applications on the same database and fake provider, one writing the audit
trail and one without it (a benchmark-only settlement, `WithoutAudit`), answer the same chat
completion for a commune; requests alternate between them. Prints the figures (the budget is
printed, not asserted); `make bench` runs it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest

from plume.app import create_app
from tests.bench.inprocess import (
    CHAT,
    Setup,
    WithoutAudit,
    bench_setup,
    interleaved,
    replace_settlement,
    report,
    serving,
)
from tests.support.database import DatabaseServer
from tests.support.settings import make_settings

pytestmark = pytest.mark.bench

WARM_UP = 30
SAMPLES = 400


@pytest.fixture(scope="module")
def setup(
    database_server: DatabaseServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Setup]:
    with bench_setup(database_server, tmp_path_factory.mktemp("audit-bench")) as ready:
        yield ready


def _entries(setup: Setup) -> int:
    url = setup.database_url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(url) as db:
        row = db.execute(
            "SELECT count(*) FROM audit_entries WHERE organization_id = %s AND action = %s",
            (uuid.UUID(setup.commune_id), "chat.completion"),
        ).fetchone()
    assert row is not None
    return int(row[0])


async def test_audit_overhead(setup: Setup) -> None:
    settings = make_settings(setup.database_url, models_file=setup.models_file)
    agent = {"Authorization": f"Bearer {setup.agent_key}"}
    apps = {"audited": create_app(settings), "unaudited": create_app(settings)}
    async with serving(apps) as clients:
        replace_settlement(apps["unaudited"], WithoutAudit)

        async def call(name: str) -> None:
            response = await clients[name].post("/v1/chat/completions", json=CHAT, headers=agent)
            assert response.status_code == 200, response.text

        timings = await interleaved(call, ("audited", "unaudited"), WARM_UP, SAMPLES)

    print(f"\n{SAMPLES} sequential chat completions per app, interleaved, fake provider")
    report(
        "Audit trail overhead (in-process apps)",
        "the audit entry",
        0.5,
        timings["audited"],
        timings["unaudited"],
    )
    # Only the auditing app wrote entries: one per request, in one consistent chain.
    assert _entries(setup) == WARM_UP + SAMPLES
