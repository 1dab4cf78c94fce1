"""Usage reports and environmental impact: what a commune consumed and what it cost, in
euros and in energy; an EPCI's view of its communes; the operator's of everyone."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from httpx import AsyncClient, Response

from plume.config import ConfigurationError
from plume.routing.config import parse_routing
from tests.support.chat import chat_body
from tests.support.factories import Factory, Key
from tests.support.providers import (
    RecordingProvider,
    dead_api_base,
    deployment,
    group,
    offline,
    router_for,
)

ARTICLE = {
    "kind": "bulletin_article",
    "subject": "Nouveaux horaires de la bibliothèque",
    "key_points": ["mercredi 14 h - 18 h", "samedi 10 h - 12 h"],
}


@pytest.fixture
def app_overrides(fake: RecordingProvider) -> dict[str, Any]:
    """`known` runs a 24-billion-parameter model in France; `unknown` one nobody described."""
    router = router_for(
        group(
            "known",
            deployment(
                "ok",
                fake.api_base,
                provider="sobre",
                impact={"total_params_b": 24, "zone": "FRA"},
            ),
            default=True,
        ),
        group("unknown", deployment("ok", fake.api_base, provider="mystere")),
        group("offline", offline()),
        group("down", deployment("ok", dead_api_base(), provider="panne")),
    )
    return {"provider_router": router}


async def usage(client: AsyncClient, key: Key, **params: Any) -> dict[str, Any]:
    response = await client.get("/v1/usage", params=params, headers=key.headers)
    assert response.status_code == 200, response.text
    report: dict[str, Any] = response.json()
    return report


async def chat(client: AsyncClient, key: Key, model: str) -> Response:
    response = await client.post("/v1/chat/completions", json=chat_body(model), headers=key.headers)
    assert response.status_code == 200, response.text
    return response


async def test_impact_is_estimated_for_a_known_model_and_null_for_an_unknown_one(
    client: AsyncClient, factory: Factory
) -> None:
    commune = await factory.commune()
    admin = await factory.key(commune, "tenant_admin")
    known = await client.post(
        "/v1/drafts", json={**ARTICLE, "model_group": "known"}, headers=admin.headers
    )
    unknown = await client.post(
        "/v1/drafts", json={**ARTICLE, "model_group": "unknown"}, headers=admin.headers
    )
    offline_draft = await client.post(
        "/v1/drafts", json={**ARTICLE, "model_group": "offline"}, headers=admin.headers
    )
    assert known.json()["usage"]["energy_kwh"] > 0
    assert known.json()["usage"]["gwp_kgco2eq"] > 0
    assert unknown.json()["usage"]["energy_kwh"] is None
    assert unknown.json()["usage"]["gwp_kgco2eq"] is None
    # The offline provider is the API process's own, small share: positive, never null.
    offline_usage = offline_draft.json()["usage"]
    assert 0 < offline_usage["energy_kwh"] < known.json()["usage"]["energy_kwh"]

    report = await usage(client, admin, group_by="model")
    rows = {row["key"]: row for row in report["rows"]}
    assert rows["openai/ok"]["requests"] == 2  # both groups run the fake's model `ok`
    assert rows["openai/ok"]["requests_without_impact"] == 1
    assert rows["openai/ok"]["energy_kwh"] == pytest.approx(known.json()["usage"]["energy_kwh"])
    assert rows["plume_offline/offline"]["requests_without_impact"] == 0
    assert report["total"]["requests"] == 3
    assert report["total"]["requests_without_impact"] == 1
    assert len(report["warnings"]) == 1
    assert "1 requête(s) sur 3" in report["warnings"][0]


async def test_a_commune_sees_what_it_consumed_by_day_kind_and_model(
    client: AsyncClient, factory: Factory
) -> None:
    commune = await factory.commune()
    admin = await factory.key(commune, "tenant_admin")
    agent = await factory.key(commune)
    drafts = [
        (await client.post("/v1/drafts", json=ARTICLE, headers=agent.headers)).json()
        for _ in range(2)
    ]
    answer = await chat(client, agent, "known")

    by_kind = await usage(client, admin, group_by="kind")
    assert set(by_kind) >= {"from", "to", "group_by", "rows", "total"}
    assert by_kind["group_by"] == "kind"
    rows = {row["key"]: row for row in by_kind["rows"]}
    assert rows["bulletin_article"]["requests"] == 2
    assert rows["chat"]["requests"] == 1
    expected_prompt = sum(d["usage"]["prompt_tokens"] for d in drafts)
    assert rows["bulletin_article"]["prompt_tokens"] == expected_prompt
    assert rows["chat"]["completion_tokens"] == answer.json()["usage"]["completion_tokens"]
    cost = sum(d["usage"]["cost_eur"] for d in drafts)
    assert rows["bulletin_article"]["cost_eur"] == pytest.approx(cost)
    total = by_kind["total"]
    assert total["requests"] == 3
    assert total["cost_eur"] == pytest.approx(sum(r["cost_eur"] for r in by_kind["rows"]))

    by_day = await usage(client, admin)
    assert by_day["group_by"] == "day"
    assert [row["requests"] for row in by_day["rows"]] == [3]
    assert by_day["rows"][0]["key"] == by_day["to"]


async def test_failed_requests_are_not_in_the_report(client: AsyncClient, factory: Factory) -> None:
    commune = await factory.commune()
    admin = await factory.key(commune, "tenant_admin")
    await chat(client, admin, "known")
    failed = await client.post(
        "/v1/chat/completions", json=chat_body("down"), headers=admin.headers
    )
    assert failed.status_code == 502
    report = await usage(client, admin, group_by="model")
    assert report["total"]["requests"] == 1
    assert [row["key"] for row in report["rows"]] == ["openai/ok"]


async def test_an_epci_sees_each_of_its_communes_and_their_total(
    client: AsyncClient, factory: Factory
) -> None:
    epci = await factory.epci()
    north = await factory.commune("Nord", parent=epci)
    south = await factory.commune("Sud", parent=epci)
    stranger = await factory.commune("Ailleurs")
    for key, count in (
        (await factory.key(north), 2),
        (await factory.key(south), 1),
        (await factory.key(stranger), 4),
    ):
        for _ in range(count):
            await chat(client, key, "known")
    admin = await factory.key(epci, "tenant_admin")
    report = await usage(client, admin, group_by="organization")
    rows = {row["key"]: row for row in report["rows"]}
    assert set(rows) == {north.slug, south.slug}
    assert rows[north.slug]["label"] == "Nord"
    assert (rows[north.slug]["requests"], rows[south.slug]["requests"]) == (2, 1)
    total = report["total"]
    assert total["requests"] == 3
    assert (
        total["prompt_tokens"]
        == rows[north.slug]["prompt_tokens"] + rows[south.slug]["prompt_tokens"]
    )
    assert total["energy_kwh"] == pytest.approx(
        rows[north.slug]["energy_kwh"] + rows[south.slug]["energy_kwh"]
    )
    one = await usage(client, admin, group_by="organization", organization_id=str(south.id))
    assert [row["key"] for row in one["rows"]] == [south.slug]

    commune_admin = await factory.key(north, "tenant_admin")
    mine = await usage(client, commune_admin, group_by="organization")
    assert [row["key"] for row in mine["rows"]] == [north.slug]
    refused = await client.get(
        f"/v1/usage?organization_id={south.id}", headers=commune_admin.headers
    )
    assert refused.status_code == 404
    agent = await factory.key(north)
    assert (await client.get("/v1/usage", headers=agent.headers)).status_code == 403

    operator = await factory.operator_key()
    everyone = await client.get("/v1/admin/usage", headers=operator.headers)
    assert everyone.status_code == 200
    slugs = {row["key"] for row in everyone.json()["rows"]}
    assert {north.slug, south.slug, stranger.slug} <= slugs


async def test_reports_as_csv_and_with_dates(client: AsyncClient, factory: Factory) -> None:
    commune = await factory.commune()
    admin = await factory.key(commune, "tenant_admin")
    await chat(client, admin, "known")
    await chat(client, admin, "unknown")
    response = await client.get("/v1/usage?group_by=model&format=csv", headers=admin.headers)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(response.text)))
    assert table[-1]["key"] == "total"
    assert table[-1]["requests"] == "2"
    assert {row["key"] for row in table[:-1]} == {"openai/ok"}

    old = await usage(client, admin, **{"from": "2025-01-01", "to": "2025-01-31"})
    assert (old["from"], old["to"], old["rows"]) == ("2025-01-01", "2025-01-31", [])
    assert old["total"]["requests"] == 0
    assert old["total"]["energy_kwh"] is None
    backwards = await client.get("/v1/usage?from=2026-11-20&to=2026-11-01", headers=admin.headers)
    assert backwards.status_code == 422
    assert backwards.json()["errors"][0]["field"] == "to"
    wrong = await client.get("/v1/usage?group_by=week", headers=admin.headers)
    assert wrong.status_code == 422
    assert wrong.json()["errors"][0]["field"] == "group_by"


def test_a_routing_file_with_an_unknown_electricity_zone_stops_start_up() -> None:
    text = (
        "model_groups:\n"
        "  - name: g\n"
        "    deployments:\n"
        "      - model: openai/x\n"
        "        hosting: fr\n"
        "        price_per_million_tokens: {input: 1, output: 1}\n"
        "        impact: {total_params_b: 7, zone: XXX}\n"
    )
    with pytest.raises(ConfigurationError, match=r"models.yaml:7: .*zone.*unknown electricity-mix"):
        parse_routing(text, "models.yaml")


async def test_csv_cells_that_look_like_formulas_are_neutralised(
    client: AsyncClient, factory: Factory
) -> None:
    # An organisation's name is the operator's input, and a spreadsheet would run it.
    commune = await factory.commune('=HYPERLINK("https://exemple.test","Cliquez")')
    agent = await factory.key(commune)
    operator = await factory.operator_key()
    await chat(client, agent, "known")
    response = await client.get(
        "/v1/admin/usage?group_by=organization&format=csv", headers=operator.headers
    )
    assert response.status_code == 200
    table = list(csv.DictReader(io.StringIO(response.text)))
    [row] = [row for row in table if row["key"] == commune.slug]
    assert row["label"] == '\'=HYPERLINK("https://exemple.test","Cliquez")'
    assert row["requests"] == "1"
    for line in table:
        for value in line.values():
            assert not value.startswith(("=", "+", "-", "@", "\t", "\r")), line
