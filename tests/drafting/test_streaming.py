"""Streamed drafts: deltas then the stored draft, offline and from the fake provider, and a
provider failure mid-request."""

from __future__ import annotations

from httpx import AsyncClient

from tests.drafting.helpers import (
    DRAFT_KEYS,
    EXAMPLES,
    assert_reviewable_act,
    created,
    form_codes,
    post_draft,
    read,
    sse_events,
)
from tests.support.factories import Key
from tests.support.french import looks_french
from tests.support.problems import assert_problem


async def test_a_streamed_draft_sends_deltas_then_the_stored_draft(
    client: AsyncClient, agent: Key
) -> None:
    request = EXAMPLES["deliberation-tarifs-concessions-cimetiere"]
    response = await post_draft(client, agent, {**request, "stream": True})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse_events(response.text)
    names = [name for name, _ in events]
    assert names[-1] == "draft", names
    assert names.count("draft") == 1, names
    assert set(names[:-1]) == {"delta"}, names
    assert len(names) > 2, names
    streamed = "".join(data["text"] for name, data in events if name == "delta")
    draft = events[-1][1]
    assert set(draft) >= DRAFT_KEYS
    assert draft["status"] == "draft"
    assert streamed.strip() == draft["text"].strip()
    assert draft["usage"]["provider"] == "offline"
    assert form_codes(draft) == ["offline_draft"]
    assert_reviewable_act("deliberation-tarifs-concessions-cimetiere", request, draft)
    # Same shape as the plain answer, and stored.
    plain = await created(client, agent, request)
    assert set(plain) == set(draft)
    assert plain["sections"] == draft["sections"]
    assert await read(client, agent, draft["id"]) == draft


async def test_a_streamed_act_from_the_fake_provider_is_parsed(
    fake_client: AsyncClient, agent: Key
) -> None:
    request = {**EXAMPLES["arrete-travaux-pont"], "model_group": "act-complet"}
    response = await post_draft(fake_client, agent, {**request, "stream": True})
    assert response.status_code == 200, response.text
    events = sse_events(response.text)
    assert [n for n, _ in events][-1] == "draft"
    streamed = "".join(data["text"] for name, data in events if name == "delta")
    assert "Nature ACTES : 6.1" in streamed  # what the model wrote…
    draft = events[-1][1]
    assert "Nature ACTES" not in draft["text"]  # …is not part of the act
    assert draft["acte_nature"]["code"] == "6.1"
    assert form_codes(draft) == []
    assert [a["number"] for a in draft["sections"]["articles"]] == ["1er", "2", "3"]
    assert await read(fake_client, agent, draft["id"]) == draft


async def test_a_provider_failure_is_an_error_event_or_a_502_and_stores_nothing(
    fake_client: AsyncClient, agent: Key
) -> None:
    request = {**EXAMPLES["arrete-course-cycliste"], "model_group": "en-panne"}
    plain = await post_draft(fake_client, agent, request)
    assert_problem(plain, 502, "provider_unavailable")

    response = await post_draft(fake_client, agent, {**request, "stream": True})
    if response.status_code == 200:
        events = sse_events(response.text)
        names = [name for name, _ in events]
        assert names[-1] == "error", names
        assert "draft" not in names, names
        problem = events[-1][1]
        assert problem["code"] == "provider_unavailable"
        assert problem["status"] == 502
        assert looks_french(problem["detail"])
        assert problem["request_id"] == response.headers["x-request-id"]
    else:
        assert_problem(response, 502, "provider_unavailable")
    listing = await fake_client.get("/v1/drafts", headers=agent.headers)
    assert listing.json()["items"] == []
