"""The drafts endpoints: policy, validation and body limits, review, and listing."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from httpx import AsyncClient

from tests.drafting.helpers import (
    DRAFT_KEYS,
    EXAMPLES,
    REVIEWER,
    created,
    french_source,
    names_field,
    post_draft,
    read,
    review,
)
from tests.support.factories import Factory, Key
from tests.support.problems import assert_problem, invalid_fields

# --------------------------------------------------------------------------------------
# Policy and validation
# --------------------------------------------------------------------------------------


async def test_a_kind_switched_off_by_policy_is_403(client: AsyncClient, factory: Factory) -> None:
    key = await factory.key(await factory.commune(allowed_kinds=["courrier"]), "agent")
    for name in (
        "arrete-course-cycliste",
        "deliberation-emploi-saisonnier",
        "bulletin-horaires-bibliotheque",
    ):
        response = await post_draft(client, key, EXAMPLES[name])
        assert_problem(response, 403, "kind_disabled")
    synthese = await post_draft(client, key, {"kind": "synthese", "source_text": "Un texte."})
    assert_problem(synthese, 403, "kind_disabled")
    allowed = await post_draft(client, key, EXAMPLES["courrier-invitation-reunion-publique"])
    assert allowed.status_code == 201, allowed.text
    listing = await client.get("/v1/drafts", headers=key.headers)
    assert [item["kind"] for item in listing.json()["items"]] == ["courrier"]


async def test_no_allowed_hosting_is_403(client: AsyncClient, factory: Factory) -> None:
    # Without a routing file only the offline provider serves, classed "fr".
    key = await factory.key(await factory.commune(allowed_hosting=["eu"]), "agent")
    response = await post_draft(client, key, EXAMPLES["arrete-course-cycliste"])
    assert_problem(response, 403, "hosting_not_allowed")
    streamed = await post_draft(client, key, {**EXAMPLES["arrete-course-cycliste"], "stream": True})
    assert_problem(streamed, 403, "hosting_not_allowed")


async def test_invalid_requests_are_422_naming_the_field(
    client: AsyncClient, agent: Key, subtests: pytest.Subtests
) -> None:
    arrete = EXAMPLES["arrete-travaux-pont"]
    deliberation = EXAMPLES["deliberation-tarifs-concessions-cimetiere"]
    cases: list[tuple[str, dict[str, Any], set[str]]] = [
        ("unknown kind", {**arrete, "kind": "decret"}, {"kind"}),
        ("no kind", {k: v for k, v in arrete.items() if k != "kind"}, {"kind"}),
        (
            "missing provisions",
            {k: v for k, v in arrete.items() if k != "provisions"},
            {"provisions"},
        ),
        (
            "missing subject and context",
            {k: v for k, v in arrete.items() if k not in ("subject", "context")},
            {"subject", "context"},
        ),
        (
            "missing decisions",
            {"kind": "deliberation", "subject": "S", "context": "C"},
            {"decisions"},
        ),
        ("missing recipient", {"kind": "courrier", "subject": "S", "points": ["p"]}, {"recipient"}),
        ("missing source", {"kind": "synthese"}, {"source_text"}),
        ("provisions not a list", {**arrete, "provisions": "Tout"}, {"provisions"}),
        ("empty provisions", {**arrete, "provisions": []}, {"provisions"}),
        ("blank provision", {**arrete, "provisions": ["  "]}, {"provisions"}),
        ("blank subject", {**arrete, "subject": "   "}, {"subject"}),
        ("subject too long", {**arrete, "subject": "x" * 501}, {"subject"}),
        ("bad date", {**arrete, "start_date": "demain"}, {"start_date"}),
        ("dates reversed", {**arrete, "end_date": "2027-02-01"}, {"end_date"}),
        ("bad vote", {**deliberation, "vote": {"for": "onze", "against": 0}}, {"vote"}),
        ("bad stream", {**arrete, "stream": "peut-être"}, {"stream"}),
        (
            "bad tone",
            {**EXAMPLES["courrier-invitation-reunion-publique"], "tone": "furieux"},
            {"tone"},
        ),
        ("bad max tokens", {**arrete, "max_output_tokens": 0}, {"max_output_tokens"}),
        ("unknown field", {**arrete, "priorite": "haute"}, {"priorite"}),
    ]
    for label, body, fields in cases:
        with subtests.test(case=label):
            response = await post_draft(client, agent, body)
            found = invalid_fields(response)
            for field in fields:
                assert names_field(found, field), (label, found)
    not_json = await client.post(
        "/v1/drafts",
        headers={**agent.headers, "Content-Type": "application/json"},
        content=b"{kind: arrete",
    )
    assert_problem(not_json, 422, "invalid_request")
    listing = await client.get("/v1/drafts", headers=agent.headers)
    assert listing.json()["items"] == []


async def test_a_body_over_1_mib_is_413_unless_a_synthese(client: AsyncClient, agent: Key) -> None:
    mib = 1024 * 1024
    arrete = EXAMPLES["arrete-travaux-pont"]
    # Over 1 MiB although each field is within its own limit (escaped characters).
    escaped = json.dumps({**arrete, "provisions": ["é" * 4_000] * 50}, ensure_ascii=True).encode()
    assert len(escaped) > mib
    response = await client.post(
        "/v1/drafts",
        headers={**agent.headers, "Content-Type": "application/json"},
        content=escaped,
    )
    assert_problem(response, 413, "payload_too_large")
    # Over 1 MiB because one field is far too long: the body is over the limit all the same.
    oversized = {**arrete, "context": "Les faits. " * (mib // 10)}
    response = await post_draft(client, agent, oversized)
    assert_problem(response, 413, "payload_too_large")

    # Sent in chunks, without Content-Length: the bytes are counted as they arrive.
    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(escaped), 64 * 1024):
            yield escaped[start : start + 64 * 1024]

    response = await client.post(
        "/v1/drafts",
        headers={**agent.headers, "Content-Type": "application/json"},
        content=chunks(),
    )
    assert "content-length" not in response.request.headers
    assert_problem(response, 413, "payload_too_large")
    listing = await client.get("/v1/drafts", headers=agent.headers)
    assert listing.json()["items"] == []


async def test_a_synthese_may_send_up_to_8_mib(client: AsyncClient, agent: Key) -> None:
    mib = 1024 * 1024
    source = french_source(7_600_000)
    body = json.dumps({"kind": "synthese", "source_text": source}, ensure_ascii=False).encode()
    assert 7 * mib < len(body) < 8 * mib
    big = await client.post(
        "/v1/drafts",
        headers={**agent.headers, "Content-Type": "application/json"},
        content=body,
    )
    assert big.status_code in (201, 202), big.text[:500]
    assert big.json()["kind"] == "synthese"
    too_big = await post_draft(
        client, agent, {"kind": "synthese", "source_text": source[: 7 * mib] + "x" * (2 * mib)}
    )
    assert_problem(too_big, 413, "payload_too_large")


# --------------------------------------------------------------------------------------
# Review and listing
# --------------------------------------------------------------------------------------


async def test_review_records_the_named_reviewer_and_is_final(
    client: AsyncClient, agent: Key, factory: Factory, subtests: pytest.Subtests
) -> None:
    draft = await created(client, agent, EXAMPLES["arrete-course-cycliste"])
    url = f"/v1/drafts/{draft['id']}/review"
    invalid: list[tuple[dict[str, Any], str]] = [
        ({"decision": "approved"}, "reviewer"),
        ({"decision": "approved", "reviewer": {"name": "  ", "title": "Maire"}}, "reviewer"),
        ({"decision": "approved", "reviewer": {"name": "Claire Dubois"}}, "reviewer"),
        ({"decision": "validé", "reviewer": REVIEWER}, "decision"),
        ({"decision": "approved", "reviewer": REVIEWER, "commune": "Paris"}, "commune"),
    ]
    for body, field in invalid:
        with subtests.test(body=body):
            response = await client.post(url, headers=agent.headers, json=body)
            assert names_field(invalid_fields(response), field), response.text
    assert (await read(client, agent, draft["id"]))["status"] == "draft"

    # Another agent of the same commune reviews it.
    reviewer_key = await factory.key(agent.organization, "agent")
    response = await review(
        client,
        reviewer_key,
        draft["id"],
        {"decision": "approved", "reviewer": REVIEWER, "comment": "Conforme, à signer."},
    )
    assert response.status_code == 200, response.text
    approved = response.json()
    assert approved["status"] == "approved"
    recorded = approved["review"]
    assert recorded["decision"] == "approved"
    # Declared by a key: not verified (a signed-in agent's is, tests/identity).
    assert recorded["reviewer"] == {**REVIEWER, "verified": False, "agent_id": None}
    assert recorded["comment"] == "Conforme, à signer."
    assert recorded["reviewed_by"] == reviewer_key.id
    assert re.match(r"\d{4}-\d\d-\d\dT.*([+-]\d\d:\d\d|Z)$", recorded["reviewed_at"])
    assert approved["created_by"] == agent.id
    assert approved["text"] == draft["text"]
    assert await read(client, agent, draft["id"]) == approved

    # A reviewed draft is immutable.
    for decision in ("approved", "rejected"):
        again = await review(
            client, agent, draft["id"], {"decision": decision, "reviewer": REVIEWER}
        )
        body = assert_problem(again, 409, "conflict")
        assert "Claire Dubois" in body["detail"]
    assert await read(client, agent, draft["id"]) == approved

    # Rejection works the same way.
    other = await created(client, agent, EXAMPLES["courrier-haie-debordante"])
    rejected = await review(
        client, agent, other["id"], {"decision": "rejected", "reviewer": REVIEWER}
    )
    assert rejected.status_code == 200, rejected.text
    assert rejected.json()["status"] == "rejected"
    assert rejected.json()["review"]["comment"] is None
    unknown = await review(client, agent, str(uuid.uuid4()))
    assert_problem(unknown, 404, "not_found")


async def test_listing_filters_and_paginates(client: AsyncClient, agent: Key) -> None:
    ids: dict[str, str] = {}
    for name in (
        "arrete-course-cycliste",
        "arrete-marche-hebdomadaire",
        "deliberation-emploi-saisonnier",
        "courrier-invitation-reunion-publique",
        "bulletin-horaires-bibliotheque",
    ):
        ids[name] = (await created(client, agent, EXAMPLES[name]))["id"]
    approved = await review(client, agent, ids["arrete-course-cycliste"])
    assert approved.status_code == 200
    assert (await review(client, agent, ids["deliberation-emploi-saisonnier"])).status_code == 200

    async def listing(**params: Any) -> dict[str, Any]:
        response = await client.get("/v1/drafts", headers=agent.headers, params=params)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    everything = await listing()
    assert {item["id"] for item in everything["items"]} == set(ids.values())
    assert everything["next_cursor"] is None
    assert all(set(item) >= DRAFT_KEYS for item in everything["items"])

    both = await listing(kind="arrete", status="approved")
    assert [item["id"] for item in both["items"]] == [ids["arrete-course-cycliste"]]
    arretes = await listing(kind="arrete")
    assert {item["id"] for item in arretes["items"]} == {
        ids["arrete-course-cycliste"],
        ids["arrete-marche-hebdomadaire"],
    }
    approved_items = await listing(status="approved")
    assert {item["kind"] for item in approved_items["items"]} == {"arrete", "deliberation"}
    assert (await listing(status="draft"))["next_cursor"] is None
    assert len((await listing(status="draft"))["items"]) == 3

    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = await listing(**params)
        pages += 1
        assert len(page["items"]) <= 2
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert sorted(seen) == sorted(ids.values())
    assert [item["id"] for item in everything["items"]] == seen  # one order

    for params in ({"kind": "decret"}, {"status": "signed"}, {"limit": 0}, {"limit": 201}):
        response = await client.get("/v1/drafts", headers=agent.headers, params=params)
        assert_problem(response, 422, "invalid_request")
    bad_cursor = await client.get("/v1/drafts", headers=agent.headers, params={"cursor": "zzz"})
    assert names_field(invalid_fields(bad_cursor), "cursor")
