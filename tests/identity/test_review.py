"""A review signed by a verified person: a signed-in agent's review carries its own name and
title (verified), a key's the name it declares (not verified); the exports say which; an
organisation may require a verified review for some kinds."""

from __future__ import annotations

import io

import docx
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession

from tests.drafting.helpers import EXAMPLES, REVIEWER
from tests.identity.helpers import csrf, fresh_email, invited, sign_in
from tests.identity.provider import MockProvider
from tests.support.factories import Factory
from tests.support.problems import assert_problem


def _docx_text(content: bytes) -> str:
    document = docx.Document(io.BytesIO(content))
    return "\n".join(p.text for p in document.paragraphs)


async def _draft(client: AsyncClient, headers: dict[str, str], name: str) -> str:
    response = await client.post("/v1/drafts", headers=headers, json=EXAMPLES[name])
    assert response.status_code == 201, response.text
    draft_id: str = response.json()["id"]
    return draft_id


async def test_a_signed_in_agents_review_is_verified_and_exported_so(
    browser: AsyncClient, provider: MockProvider, factory: Factory, db: AsyncSession
) -> None:
    commune = await factory.commune("Commune de Vérifville", verified_review_required=["arrete"])
    email = fresh_email()
    agent = await invited(db, commune, email, title="Maire")
    assert (await sign_in(browser, provider, email)).status_code == 302
    draft_id = await _draft(browser, csrf(browser), "arrete-course-cycliste")

    typed = await browser.post(
        f"/v1/drafts/{draft_id}/review",
        headers=csrf(browser),
        json={"decision": "approved", "reviewer": REVIEWER},
    )
    assert_problem(typed, 422, "invalid_request", field="reviewer")

    response = await browser.post(
        f"/v1/drafts/{draft_id}/review", headers=csrf(browser), json={"decision": "approved"}
    )
    assert response.status_code == 200, response.text
    reviewer = response.json()["review"]["reviewer"]
    assert reviewer == {
        "name": "Camille Martin",
        "title": "Maire",
        "verified": True,
        "agent_id": str(agent.id),
    }
    assert (await browser.get(f"/v1/drafts/{draft_id}")).json()["review"]["reviewer"] == reviewer

    exported = await browser.get(f"/v1/drafts/{draft_id}/export", params={"format": "docx"})
    assert exported.status_code == 200, exported.text
    text = _docx_text(exported.content)
    assert "Validé par Camille Martin, Maire" in text
    assert "identité vérifiée" in text
    assert "non vérifiée" not in text
    markdown = await browser.get(f"/v1/drafts/{draft_id}/export", params={"format": "md"})
    assert "identité vérifiée" in markdown.text


async def test_a_keys_review_is_declared_not_verified(
    client: AsyncClient, factory: Factory
) -> None:
    key = await factory.key(await factory.commune(), "agent")
    draft_id = await _draft(client, key.headers, "arrete-course-cycliste")
    missing = await client.post(
        f"/v1/drafts/{draft_id}/review", headers=key.headers, json={"decision": "approved"}
    )
    assert_problem(missing, 422, "invalid_request", field="reviewer")
    response = await client.post(
        f"/v1/drafts/{draft_id}/review",
        headers=key.headers,
        json={"decision": "approved", "reviewer": REVIEWER},
    )
    assert response.status_code == 200, response.text
    assert response.json()["review"]["reviewer"] == {
        **REVIEWER,
        "verified": False,
        "agent_id": None,
    }
    exported = await client.get(
        f"/v1/drafts/{draft_id}/export", headers=key.headers, params={"format": "docx"}
    )
    assert "identité déclarée, non vérifiée" in _docx_text(exported.content)


async def test_verified_review_required_refuses_a_keys_review_of_an_arrete(
    client: AsyncClient, factory: Factory
) -> None:
    commune = await factory.commune(verified_review_required=["arrete", "deliberation"])
    key = await factory.key(commune, "tenant_admin")
    arrete = await _draft(client, key.headers, "arrete-course-cycliste")
    response = await client.post(
        f"/v1/drafts/{arrete}/review",
        headers=key.headers,
        json={"decision": "approved", "reviewer": REVIEWER},
    )
    problem = assert_problem(response, 403, "forbidden")
    assert "ProConnect" in problem["detail"]
    # Other kinds are reviewed by the declared name, as before.
    courrier = await _draft(client, key.headers, "courrier-haie-debordante")
    allowed = await client.post(
        f"/v1/drafts/{courrier}/review",
        headers=key.headers,
        json={"decision": "approved", "reviewer": REVIEWER},
    )
    assert allowed.status_code == 200, allowed.text


async def test_verified_review_required_is_inherited_and_adds_up(
    client: AsyncClient, factory: Factory
) -> None:
    epci = await factory.epci(verified_review_required=["deliberation"])
    commune = await factory.commune(parent=epci, verified_review_required=["arrete"])
    key = await factory.key(commune, "agent")
    organization = (await client.get("/v1/organization", headers=key.headers)).json()
    assert organization["policy"]["verified_review_required"] == ["arrete", "deliberation"]


async def test_the_policy_key_is_validated(client: AsyncClient, factory: Factory) -> None:
    operator = await factory.operator_key()
    commune = await factory.commune()
    response = await client.patch(
        f"/v1/admin/organizations/{commune.id}",
        headers=operator.headers,
        json={"policy": {"verified_review_required": ["arrete", "permis"]}},
    )
    assert_problem(response, 422, "invalid_request")
    ok = await client.patch(
        f"/v1/admin/organizations/{commune.id}",
        headers=operator.headers,
        json={"policy": {"verified_review_required": ["arrete"]}},
    )
    assert ok.status_code == 200, ok.text
    assert ok.json()["policy"]["verified_review_required"] == ["arrete"]
