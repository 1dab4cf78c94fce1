"""Prometheus metrics: per-commune series after real requests, route templates, and the
token."""

from __future__ import annotations

from httpx import AsyncClient
from pydantic import SecretStr

from tests.metrics.helpers import BULLETIN, samples, value
from tests.support.clients import AppFactory, client_for
from tests.support.factories import Factory
from tests.support.settings import make_settings


async def test_a_draft_is_counted_for_its_commune(client: AsyncClient, factory: Factory) -> None:
    commune = await factory.commune()
    key = await factory.key(commune)
    slug = commune.slug
    before = (await client.get("/metrics")).text
    response = await client.post("/v1/drafts", json=BULLETIN, headers=key.headers)
    assert response.status_code == 201, response.text
    draft_id = response.json()["id"]
    assert (await client.get(f"/v1/drafts/{draft_id}", headers=key.headers)).status_code == 200
    after = (await client.get("/metrics")).text
    request = {
        "organization": slug,
        "kind": "bulletin_article",
        "model_group": "offline",
        "outcome": "success",
    }
    assert value(after, "plume_requests_total", **request) == (
        value(before, "plume_requests_total", **request) + 1
    )
    usage = response.json()["usage"]
    for direction, tokens in (
        ("prompt", usage["prompt_tokens"]),
        ("completion", usage["completion_tokens"]),
    ):
        labels = {"organization": slug, "model_group": "offline", "direction": direction}
        assert value(after, "plume_tokens_total", **labels) == (
            value(before, "plume_tokens_total", **labels) + tokens
        )
    # The offline provider costs nothing, and the series exists all the same.
    assert (
        "plume_cost_euros_total",
        frozenset({("organization", slug), ("provider", "offline")}),
    ) in (samples(after))
    # Routes by template: never a raw path with an id in it.
    assert draft_id not in after
    route = {"route": "/v1/drafts/{draft_id}", "method": "GET", "status": "200"}
    assert value(after, "plume_http_request_duration_seconds_count", **route) >= 1
    assert "plume_provider_latency_seconds_bucket" in after


async def test_metrics_may_require_a_token(make_app: AppFactory, database_url: str) -> None:
    settings = make_settings(database_url, metrics_token=SecretStr("s3cret-metrics-token"))
    async with client_for(make_app(settings=settings)) as http:
        assert (await http.get("/metrics")).status_code == 401
        wrong = await http.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        right = await http.get("/metrics", headers={"Authorization": "Bearer s3cret-metrics-token"})
        assert right.status_code == 200
        assert "plume_requests_total" in right.text
