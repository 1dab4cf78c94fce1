"""plume_refusals_total: every error answer, counted for the caller's commune (or
`anonymous`) with its status and problem code, the codes from a fixed set."""

from __future__ import annotations

import uuid

from httpx import AsyncClient

from plume.app import create_app
from plume.credentials.secrets import generate_key
from plume.errors import problem_classes
from tests.metrics.helpers import BULLETIN, samples, value
from tests.support.chat import chat_body
from tests.support.clients import AppFactory, bearer, client_for, running
from tests.support.database import UNREACHABLE_DATABASE
from tests.support.factories import Factory
from tests.support.providers import unreachable_router
from tests.support.quotas import set_quotas
from tests.support.settings import make_settings


async def _refusals(client: AsyncClient) -> str:
    return (await client.get("/metrics")).text


def _added(before: str, after: str, organization: str, status: int, code: str) -> float:
    labels = {"organization": organization, "status": str(status), "code": code}
    return value(after, "plume_refusals_total", **labels) - value(
        before, "plume_refusals_total", **labels
    )


async def test_each_refusal_is_counted_for_its_commune_with_its_code(
    client: AsyncClient, factory: Factory, make_app: AppFactory
) -> None:
    commune = await factory.commune()
    agent = await factory.key(commune)
    operator = await factory.operator_key()
    slug = commune.slug
    before = await _refusals(client)

    assert (await client.get("/v1/admin/organizations", headers=agent.headers)).status_code == 403
    missing = await client.get(f"/v1/drafts/{uuid.uuid4()}", headers=agent.headers)
    assert missing.status_code == 404
    invalid = await client.post("/v1/drafts", json={"kind": "nope"}, headers=agent.headers)
    assert invalid.status_code == 422
    # The provider down: a 502 for the commune, on the OpenAI-compatible route too.
    async with client_for(make_app(provider_router=unreachable_router())) as down:
        failed = await down.post("/v1/chat/completions", json=chat_body(), headers=agent.headers)
        assert failed.status_code == 502
    quota = [{"metric": "requests", "period": "day", "limit": 1}]
    assert (await set_quotas(client, operator, commune, quota)).status_code == 200
    assert (
        await client.post("/v1/drafts", json=BULLETIN, headers=agent.headers)
    ).status_code == 201
    over = await client.post("/v1/drafts", json=BULLETIN, headers=agent.headers)
    assert over.status_code == 429
    again = await client.post(
        "/v1/admin/organizations",
        json={"kind": "commune", "name": "Doublon", "insee_code": commune.insee_code},
        headers=operator.headers,
    )
    assert again.status_code == 409
    unknown = await client.get("/v1/drafts", headers={"Authorization": "Bearer plm_nope"})
    assert unknown.status_code == 401

    after = await _refusals(client)
    assert _added(before, after, slug, 403, "forbidden") == 1
    assert _added(before, after, slug, 404, "not_found") == 1
    assert _added(before, after, slug, 422, "invalid_request") == 1
    assert _added(before, after, slug, 429, "quota_exceeded") == 1
    assert _added(before, after, slug, 502, "provider_unavailable") == 1
    assert _added(before, after, "operator", 409, "conflict") == 1
    assert _added(before, after, "anonymous", 401, "unauthenticated") >= 1
    # Nothing else was counted for the commune: its draft succeeded.
    mine = [
        (dict(labels), count)
        for (name, labels), count in samples(after).items()
        if name == "plume_refusals_total" and ("organization", slug) in labels
    ]
    assert sorted((labels["status"], count) for labels, count in mine) == [
        ("403", 1),
        ("404", 1),
        ("422", 1),
        ("429", 1),
        ("502", 1),
    ]


async def test_refusal_labels_come_from_fixed_sets(client: AsyncClient) -> None:
    """An unknown route or method is refused with a known code: what the caller typed never
    becomes a label."""
    path = f"/v1/{uuid.uuid4()}"
    assert (await client.get(path)).status_code == 404
    assert (await client.delete("/v1/models")).status_code == 405
    text = await _refusals(client)
    codes = {
        dict(labels)["code"] for (name, labels) in samples(text) if name == "plume_refusals_total"
    }
    assert codes <= set(problem_classes()) | {"other"}
    assert path not in text
    assert (
        value(
            text,
            "plume_refusals_total",
            organization="anonymous",
            status="405",
            code="method_not_allowed",
        )
        >= 1
    )


async def test_an_unreachable_database_is_counted_as_a_503() -> None:
    async with running(create_app(make_settings(UNREACHABLE_DATABASE))) as http:
        before = await _refusals(http)
        response = await http.get("/v1/organization", headers=bearer(generate_key()))
        assert response.status_code == 503
        after = await _refusals(http)
    assert _added(before, after, "anonymous", 503, "unavailable") == 1


async def test_an_invented_method_adds_no_series(client: AsyncClient) -> None:
    for method in ["BREW", "PROPFIND-X1", "A" * 40]:
        assert (await client.request(method, "/healthz")).status_code == 405
    exposition = await _refusals(client)
    methods = {
        dict(labels)["method"]
        for name, labels in samples(exposition)
        if name == "plume_http_request_duration_seconds_count"
    }
    assert "OTHER" in methods
    assert methods <= {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "OTHER"}
