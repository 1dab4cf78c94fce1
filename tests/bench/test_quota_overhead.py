"""Benchmark: what quota enforcement adds to a request.

Two in-process applications on the same database and the same fake provider, one with
quota enforcement and one without (a benchmark-only settlement, `WithoutQuotas`), answer the
same chat completion for a commune that has quotas, as has its EPCI (so a reservation touches two
levels). Requests alternate between the two, so both see the same machine, database and
provider; the difference of their latencies is the cost of reserving and settling. Prints
the figures (the budget is printed, not asserted); `make bench` runs it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from decimal import Decimal

import psycopg
import pytest

from plume.app import create_app
from tests.bench.inprocess import (
    CHAT,
    Setup,
    WithoutQuotas,
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
QUOTAS = [
    {"metric": "requests", "period": "day", "limit": 1_000_000},
    {"metric": "tokens", "period": "day", "limit": 10**9},
    {"metric": "cost_eur", "period": "month", "limit": 10_000},
]


@pytest.fixture(scope="module")
def setup(
    database_server: DatabaseServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Setup]:
    with bench_setup(database_server, tmp_path_factory.mktemp("quota-bench")) as ready:
        yield ready


def _counters(database_url: str, organization_id: str) -> dict[tuple[str, str], Decimal]:
    """Each current counter's used (nothing may stay reserved)."""
    url = database_url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(url) as db:
        rows = db.execute(
            "SELECT metric, period, used, reserved FROM quota_counters WHERE organization_id = %s",
            (uuid.UUID(organization_id),),
        ).fetchall()
    assert all(reserved == 0 for _, _, _, reserved in rows), rows
    return {(metric, period): used for metric, period, used, _ in rows}


async def test_quota_overhead(setup: Setup) -> None:
    settings = make_settings(setup.database_url, models_file=setup.models_file)
    operator = {"Authorization": f"Bearer {setup.operator_key}"}
    agent = {"Authorization": f"Bearer {setup.agent_key}"}
    apps = {
        "enforced": create_app(settings),
        "free": create_app(settings),
    }
    levels = (setup.commune_id, setup.epci_id)
    async with serving(apps) as clients:
        replace_settlement(apps["free"], WithoutQuotas)
        for organization_id in levels:
            response = await clients["enforced"].put(
                f"/v1/admin/organizations/{organization_id}/quotas", json=QUOTAS, headers=operator
            )
            assert response.status_code == 200, response.text

        async def call(name: str) -> None:
            response = await clients[name].post("/v1/chat/completions", json=CHAT, headers=agent)
            assert response.status_code == 200, response.text
            # Only the enforcing app knows the quotas the request counted against.
            assert ("RateLimit-Limit" in response.headers) == (name == "enforced")

        timings = await interleaved(call, ("enforced", "free"), WARM_UP, SAMPLES)

    print(f"\n{SAMPLES} sequential chat completions per app, interleaved; quotas on 2 levels")
    report(
        "Quota enforcement overhead (in-process apps)",
        "quota enforcement",
        1,
        timings["enforced"],
        timings["free"],
    )
    # The counters moved by the enforcing app's requests only, at both levels.
    for organization_id in levels:
        after = _counters(setup.database_url, organization_id)
        assert after[("requests", "day")] == WARM_UP + SAMPLES
        assert after[("tokens", "day")] > 0
