"""PATCH /v1/drafts/{id}: an agent corrects a draft's text before its review; the sections are
parsed and the checker runs again on the new text; the audit trail records the digests of
both texts, never a text; a reviewed or erased draft is no longer editable (409)."""

from __future__ import annotations

import hashlib
from typing import Any

from httpx import AsyncClient

from tests.drafting.helpers import EXAMPLES, created, read, review
from tests.support.factories import Factory, Key
from tests.support.problems import assert_problem

EDITED = """# Arrêté portant réglementation du stationnement place de la Mairie

Le Maire de la commune,

VU le code général des collectivités territoriales, notamment ses articles L. 2212-1 et L. 2213-2 ;

CONSIDÉRANT que le marché hebdomadaire se tient place de la Mairie le samedi matin ;

ARRÊTE

Article 1er : Le stationnement est interdit place de la Mairie le samedi de 6 h à 14 h.

Article 2 : Le présent arrêté entre en vigueur le [À COMPLÉTER].
"""


async def patch(client: AsyncClient, key: Key, draft_id: str, body: Any) -> Any:
    return await client.patch(f"/v1/drafts/{draft_id}", headers=key.headers, json=body)


async def test_an_edit_replaces_the_text_and_recomputes_sections_and_warnings(
    client: AsyncClient, factory: Factory
) -> None:
    key = await factory.key(await factory.commune(), "agent")
    draft = await created(client, key, EXAMPLES["arrete-course-cycliste"])
    response = await patch(client, key, draft["id"], {"text": EDITED})
    assert response.status_code == 200, response.text
    edited = response.json()
    assert edited["text"] == EDITED
    assert edited["title"] == "Arrêté portant réglementation du stationnement place de la Mairie"
    assert [a["number"] for a in edited["sections"]["articles"]] == ["1er", "2"]
    codes = [w["code"] for w in edited["warnings"]]
    assert "offline_draft" not in codes  # the person wrote this text, not the offline provider
    assert "missing_information" in codes
    assert "missing_appeal_mention" in codes  # the new text has no voies et délais de recours
    assert codes != [w["code"] for w in draft["warnings"]]
    assert (await read(client, key, draft["id"]))["text"] == EDITED
    assert edited["status"] == "draft"


async def test_an_edit_is_audited_with_digests_never_the_text(
    client: AsyncClient, factory: Factory
) -> None:
    commune = await factory.commune()
    key = await factory.key(commune, "agent")
    admin = await factory.key(commune, "tenant_admin")
    draft = await created(client, key, EXAMPLES["arrete-course-cycliste"])
    assert (await patch(client, key, draft["id"], {"text": EDITED})).status_code == 200
    entries = (await client.get("/v1/audit?action=draft.edit", headers=admin.headers)).json()
    [entry] = entries["items"]
    assert entry["target"] == {"type": "draft", "id": draft["id"]}
    details = entry["details"]
    assert details["before"]["sha256"] == hashlib.sha256(draft["text"].encode()).hexdigest()
    assert details["after"]["sha256"] == hashlib.sha256(EDITED.encode()).hexdigest()
    assert "stationnement" not in str(entry)


async def test_a_reviewed_or_erased_draft_cannot_be_edited(
    client: AsyncClient, factory: Factory
) -> None:
    key = await factory.key(await factory.commune(), "agent")
    draft = await created(client, key, EXAMPLES["arrete-course-cycliste"])
    assert (await review(client, key, draft["id"])).status_code == 200
    assert_problem(await patch(client, key, draft["id"], {"text": EDITED}), 409, "conflict")
    assert (await read(client, key, draft["id"]))["text"] == draft["text"]
    other = await created(client, key, EXAMPLES["arrete-course-cycliste"])
    erased = await client.delete(f"/v1/drafts/{other['id']}", headers=key.headers)
    assert erased.status_code == 204
    assert_problem(await patch(client, key, other["id"], {"text": EDITED}), 409, "conflict")


async def test_an_edit_needs_a_text(client: AsyncClient, factory: Factory) -> None:
    key = await factory.key(await factory.commune(), "agent")
    draft = await created(client, key, EXAMPLES["arrete-course-cycliste"])
    for body in ({}, {"text": "   "}, {"text": EDITED, "title": "Autre"}):
        response = await patch(client, key, draft["id"], body)
        assert_problem(response, 422, "invalid_request")
    assert (await read(client, key, draft["id"]))["text"] == draft["text"]
