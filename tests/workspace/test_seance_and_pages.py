"""The délibération form's pouvoirs (one « X donne pouvoir à Y » a line, read on the server
into the API's `session.proxies`), and the drafts list past its first 30: « Suivants » and
« Précédents », the filters kept."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession

from plume.models import Draft, DraftStatus
from plume.workspace import forms
from tests.identity.provider import MockProvider
from tests.support.factories import Factory
from tests.workspace.helpers import SignedIn, csrf_field, draft_id_of, signed_in_agent, text_of


def deliberation(**changes: str) -> dict[str, str]:
    form = forms.BY_KIND["deliberation"]
    return {**forms.values_of(form, forms.examples()["deliberation"]), **changes}


async def test_the_pouvoirs_typed_one_a_line_are_named_in_the_deliberation(
    browser: AsyncClient, provider: MockProvider, factory: Factory, db: AsyncSession
) -> None:
    await signed_in_agent(browser, provider, factory, db)
    example = text_of((await browser.get("/app/rediger/deliberation?exemple=1")).text)
    assert '<label for="champ-session-proxies">Pouvoirs</label>' in example
    assert "M. Didier Cauchois donne pouvoir à Mme Sandrine Aubert</textarea>" in example
    posted = deliberation(
        **{
            "session.present": "12",
            "session.represented": "2",
            "session.proxies": "M. Didier Cauchois donne pouvoir à Mme Sandrine Aubert\n\n"
            "Mme Léa Roux DONNE POUVOIR A M. Paul Girard\n",
            "vote.for": "13",
        }
    )
    draft_id = draft_id_of(
        await browser.post("/app/rediger/deliberation", data={**posted, **csrf_field(browser)})
    )
    draft = (await browser.get(f"/v1/drafts/{draft_id}")).json()
    assert (
        "Pouvoirs : M. Didier Cauchois à Mme Sandrine Aubert ; Mme Léa Roux à M. Paul Girard"
        in draft["text"]
    )


async def test_pouvoirs_that_cannot_be_read_are_said_next_to_their_field(
    browser: AsyncClient, provider: MockProvider, factory: Factory, db: AsyncSession
) -> None:
    await signed_in_agent(browser, provider, factory, db)
    cases = {
        "M. Didier Cauchois donne pouvoir à Mme Sandrine Aubert\nMme Léa Roux à M. Paul Girard": (
            "Ligne 2 : écrivez « Prénom Nom donne pouvoir à Prénom Nom »."
        ),
        "": None,  # no pouvoirs typed: the draft asks for them ([À COMPLÉTER])
        "M. A donne pouvoir à Mme B\nM. C donne pouvoir à Mme D": (
            "2 pouvoir(s) pour 1 conseiller(s) représenté(s) : indiquez un pouvoir par "
            "conseiller représenté."
        ),
    }
    for typed, said in cases.items():
        posted = {**deliberation(**{"session.proxies": typed}), **csrf_field(browser)}
        response = await browser.post("/app/rediger/deliberation", data=posted)
        if said is None:
            assert response.status_code == 303, response.text[:300]
            continue
        assert response.status_code == 422, typed
        html = text_of(response.text)
        assert f'id="champ-session-proxies-erreur">{said}</p>' in html
        assert f'<a href="#champ-session-proxies">Pouvoirs : {said}</a>' in html
        assert typed in html  # what was typed is kept


async def _drafts(
    db: AsyncSession, who: SignedIn, count: int, kind: str, day: int = 4
) -> list[Draft]:
    start = datetime(2027, 1, day, 9, 0, tzinfo=UTC)
    rows = [
        Draft(
            organization_id=who.commune.id,
            created_by_agent_id=who.agent.id,
            kind=kind,
            status=DraftStatus.DRAFT,
            title=f"{kind} n° {number:02d}",
            request={"kind": kind},
            text="Texte.",
            ai_notice="Document rédigé avec l'aide d'une IA.",
            created_at=start + timedelta(minutes=number),
        )
        for number in range(1, count + 1)
    ]
    db.add_all(rows)
    await db.flush()
    return rows


def titles(html: str) -> list[str]:
    return re.findall(r'<a href="/app/brouillons/[0-9a-f-]{36}">([^<]+)</a>', html)


def link(html: str, name: str) -> str | None:
    found = re.search(rf'<a href="([^"]+)" rel="[a-z]+">[«» ]*{name}[«» ]*</a>', html)
    return found[1].replace("&amp;", "&") if found else None


async def test_the_list_goes_on_past_thirty_drafts_with_its_filters(
    browser: AsyncClient, provider: MockProvider, factory: Factory, db: AsyncSession
) -> None:
    who = await signed_in_agent(browser, provider, factory, db)
    await _drafts(db, who, 65, "courrier")
    await _drafts(db, who, 3, "arrete", day=5)
    first = (await browser.get("/app", params={"kind": "courrier"})).text
    assert titles(first) == [f"courrier n° {n:02d}" for n in range(65, 35, -1)]
    assert link(first, "Précédents") is None
    assert '<li aria-current="page">Page 1</li>' in first
    second_url = link(first, "Suivants")
    assert second_url is not None
    assert "kind=courrier" in second_url
    second = (await browser.get(second_url)).text
    assert titles(second) == [f"courrier n° {n:02d}" for n in range(35, 5, -1)]
    assert '<li aria-current="page">Page 2</li>' in second
    third_url = link(second, "Suivants")
    assert third_url is not None
    third = (await browser.get(third_url)).text
    assert titles(third) == [f"courrier n° {n:02d}" for n in range(5, 0, -1)]
    assert link(third, "Suivants") is None  # the last page
    back = link(third, "Précédents")
    assert back is not None
    assert "kind=courrier" in back
    assert titles((await browser.get(back)).text) == titles(second)
    first_again = link(second, "Précédents")
    assert first_again == "/app?kind=courrier"
    # Without filter the newer arrêtés come first; a forged cursor is a French error page.
    unfiltered = titles((await browser.get("/app")).text)
    assert unfiltered[:4] == ["arrete n° 03", "arrete n° 02", "arrete n° 01", "courrier n° 65"]
    forged = await browser.get("/app", params={"suite": "pas-un-curseur"})
    assert forged.status_code == 422
    assert "Curseur inconnu" in text_of(forged.text)
