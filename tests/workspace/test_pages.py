"""The workspace's pages over HTTP, as a browser gets them: signing in, the labels people and
acceptance tests rely on, the security headers, CSRF, the form's errors, and the whole path
from a form to a reviewed, downloaded draft."""

from __future__ import annotations

import re
import uuid
from decimal import Decimal
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession

from plume.workspace import forms
from plume.workspace.pages import amount
from tests.drafting.helpers import sse_events
from tests.identity.provider import MockProvider
from tests.support.clients import AppFactory, client_for
from tests.support.factories import Factory
from tests.workspace.helpers import csrf_field, draft_id_of, signed_in_agent, text_of

KIND_LINKS = {
    "Arrêté": "/app/rediger/arrete",
    "Délibération": "/app/rediger/deliberation",
    "Courrier": "/app/rediger/courrier",
    "Article de bulletin": "/app/rediger/article-de-bulletin",
    "Synthèse": "/app/rediger/synthese",
}


def assert_secure_page(response: Any) -> None:
    policy = response.headers["content-security-policy"]
    assert "'unsafe-inline'" not in policy
    assert "script-src 'self'" in policy
    assert "style-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert response.headers["x-frame-options"] == "DENY"
    assert '<html lang="fr">' in response.text
    assert "<script>" not in response.text
    assert "style=" not in response.text
    assert "<style" not in response.text


def example_form(kind: str) -> dict[str, str]:
    form = forms.BY_KIND[kind]
    return forms.values_of(form, forms.examples()[kind])


async def test_a_visitor_is_shown_proconnects_button(browser: AsyncClient) -> None:
    response = await browser.get("/app")
    assert response.status_code == 200
    assert_secure_page(response)
    assert "S’identifier avec ProConnect" in response.text
    assert 'href="/auth/login?next=/app"' in response.text
    assert "<title>Connexion — Plume</title>" in response.text
    # The other pages send a visitor to it.
    assert (await browser.get("/app/rediger/arrete")).headers["location"] == "/app"


async def test_without_sign_in_the_page_says_so(make_app: AppFactory) -> None:
    async with client_for(make_app()) as plain:
        response = await plain.get("/app")
    assert response.status_code == 200
    assert "n’est pas activée" in response.text
    assert "S’identifier avec ProConnect" not in response.text


async def test_the_workspace_is_out_of_the_api_description(client: AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert not [path for path in paths if path.startswith("/app")]


async def test_an_api_key_cannot_open_the_workspace(client: AsyncClient, factory: Factory) -> None:
    key = await factory.key(await factory.commune(), "tenant_admin")
    response = await client.get("/app", headers=key.headers)
    assert response.status_code == 403
    assert "réservé aux agents connectés" in text_of(response.text)
    assert key.organization.name not in response.text


async def test_static_assets_are_served_and_only_them(browser: AsyncClient) -> None:
    css = await browser.get("/app/static/plume.css")
    assert css.status_code == 200
    assert css.headers["content-type"].startswith("text/css")
    assert (await browser.get("/app/static/plume.js")).status_code == 200
    for name in ("..%2Fpages.py", "pages.py", ".hidden.css", "absent.css"):
        assert (await browser.get(f"/app/static/{name}")).status_code == 404, name


async def test_the_home_page_lists_drafts_and_links_each_kinds_form(
    browser: AsyncClient, provider: MockProvider, factory: Factory, db: AsyncSession
) -> None:
    who = await signed_in_agent(browser, provider, factory, db)
    response = await browser.get("/app")
    assert response.status_code == 200
    assert_secure_page(response)
    assert "<title>Mes brouillons — Plume</title>" in response.text
    for label, href in KIND_LINKS.items():
        assert f'<a class="carte" href="{href}">{label}</a>' in response.text
    assert who.commune.name in response.text
    assert 'action="/auth/logout"' in response.text
    assert f'name="csrf_token" value="{csrf_field(browser)["csrf_token"]}"' in response.text
    assert "Aucun brouillon" in response.text


@pytest.mark.parametrize("kind", [form.kind for form in forms.FORMS])
async def test_each_form_labels_its_fields_and_marks_the_required_ones(
    browser: AsyncClient, provider: MockProvider, factory: Factory, db: AsyncSession, kind: str
) -> None:
    await signed_in_agent(browser, provider, factory, db)
    form = forms.BY_KIND[kind]
    response = await browser.get(f"/app/rediger/{form.slug}")
    assert response.status_code == 200
    assert_secure_page(response)
    html = text_of(response.text)
    assert f"<title>Rédiger : {form.label} — Plume</title>" in html
    for field in form.fields:
        assert f'<label for="{field.html_id}">{field.label}' in html, field.name
        control = re.search(rf'<(?:input|textarea|select) id="{field.html_id}"[^>]*>', html)
        assert control, field.name
        assert (" required" in control.group(0)) == field.required, field.name
    if kind != "synthese":
        assert '<label for="champ-subject">Objet' in html
    assert html.count('type="submit"') == 2  # sign-out, and the form's one button
    assert '<button type="submit" class="principal">Rédiger</button>' in html
    assert re.search(r'\. <a href="[^"]+\?exemple=1" class="exemple">Exemple</a>', html)
    example = await browser.get(f"/app/rediger/{form.slug}", params={"exemple": "1"})
    first_example = next(f for f in form.fields if f.name in example_form(kind))
    assert example_form(kind)[first_example.name][:40] in text_of(example.text)


async def test_a_form_without_its_csrf_token_is_refused(
    browser: AsyncClient, provider: MockProvider, factory: Factory, db: AsyncSession
) -> None:
    await signed_in_agent(browser, provider, factory, db)
    response = await browser.post("/app/rediger/arrete", data=example_form("arrete"))
    assert response.status_code == 403
    assert "CSRF" in response.text
    assert "Aucun brouillon" in (await browser.get("/app")).text
    wrong = await browser.post(
        "/app/rediger/arrete", data={**example_form("arrete"), "csrf_token": "x" * 64}
    )
    assert wrong.status_code == 403


async def test_errors_are_shown_next_to_their_fields_in_french(
    browser: AsyncClient, provider: MockProvider, factory: Factory, db: AsyncSession
) -> None:
    await signed_in_agent(browser, provider, factory, db)
    posted = {
        **example_form("deliberation"),
        "subject": "  ",
        "session.members_in_office": "11",
        "session.present": "14",
        "vote.for": "beaucoup",
        **csrf_field(browser),
    }
    response = await browser.post("/app/rediger/deliberation", data=posted)
    assert response.status_code == 422
    html = text_of(response.text)
    assert 'role="alert"' in html
    assert "<title>Erreur — Rédiger : Délibération — Plume</title>" in html
    assert 'id="champ-subject-erreur">Ce champ est obligatoire.' in html
    assert "Les présents (14) dépassent les conseillers en exercice (11)." in html
    assert 'id="champ-vote-for-erreur">Indiquez un nombre entier.' in html
    assert '<a href="#champ-subject">Objet : Ce champ est obligatoire.</a>' in html
    # What was typed is kept.
    assert posted["context"][:60] in html
    assert 'aria-invalid="true"' in html


async def test_a_draft_from_the_form_to_its_download(
    browser: AsyncClient, provider: MockProvider, factory: Factory, db: AsyncSession
) -> None:
    await signed_in_agent(browser, provider, factory, db)
    created = await browser.post(
        "/app/rediger/arrete", data={**example_form("arrete"), **csrf_field(browser)}
    )
    draft_id = draft_id_of(created)
    page = await browser.get(f"/app/brouillons/{draft_id}")
    assert page.status_code == 200
    assert_secure_page(page)
    html = text_of(page.text)
    assert "Points à vérifier" in html
    assert "<mark>[À COMPLÉTER]</mark>" in html or "[À COMPLÉTER]" not in html
    assert "Article 1er" in html
    for label in ("Approuver", "Rejeter", "Enregistrer", "Effacer"):
        assert f">{label}</button>" in html, label
    for extension in ("docx", "odt", "md"):
        link = f'href="/v1/drafts/{draft_id}/export?format={extension}" download>'
        assert f"{link}Télécharger (.{extension})</a>" in html
    listed = await browser.get("/app", params={"kind": "arrete", "statut": "draft"})
    assert f"/app/brouillons/{draft_id}" in listed.text
    other = await browser.get("/app", params={"kind": "courrier"})
    assert f"/app/brouillons/{draft_id}" not in other.text

    approved = await browser.post(
        f"/app/brouillons/{draft_id}/relecture",
        data={"decision": "approved", **csrf_field(browser)},
    )
    assert approved.status_code == 303
    page = text_of((await browser.get(f"/app/brouillons/{draft_id}")).text)
    assert "Approuvé par Camille Martin, Secrétaire de mairie" in page
    assert "identité vérifiée" in page
    assert ">Approuver</button>" not in page
    assert ">Enregistrer</button>" not in page
    again = await browser.post(
        f"/app/brouillons/{draft_id}/relecture",
        data={"decision": "rejected", **csrf_field(browser)},
    )
    assert again.status_code == 409
    assert "déjà été approuvé" in text_of(again.text)

    docx = await browser.get(f"/v1/drafts/{draft_id}/export", params={"format": "docx"})
    assert docx.status_code == 200
    assert docx.content[:2] == b"PK"


async def test_editing_before_review_recomputes_the_warnings(
    browser: AsyncClient, provider: MockProvider, factory: Factory, db: AsyncSession
) -> None:
    await signed_in_agent(browser, provider, factory, db)
    created = await browser.post(
        "/app/rediger/courrier", data={**example_form("courrier"), **csrf_field(browser)}
    )
    draft_id = draft_id_of(created)
    text = "Madame, Monsieur,\n\nNous vous écrivons au sujet de votre haie. [À COMPLÉTER]\n"
    saved = await browser.post(
        f"/app/brouillons/{draft_id}/texte", data={"text": text, **csrf_field(browser)}
    )
    assert saved.status_code == 303
    draft = (await browser.get(f"/v1/drafts/{draft_id}")).json()
    assert draft["text"] == text
    assert "offline_draft" not in [w["code"] for w in draft["warnings"]]
    assert "missing_information" in [w["code"] for w in draft["warnings"]]
    page = await browser.get(f"/app/brouillons/{draft_id}")
    assert "<mark>[À COMPLÉTER]</mark>" in page.text
    empty = await browser.post(
        f"/app/brouillons/{draft_id}/texte", data={"text": "  ", **csrf_field(browser)}
    )
    assert empty.status_code == 422
    assert 'role="alert"' in empty.text


async def test_erasure_asks_for_one_confirmation(
    browser: AsyncClient, provider: MockProvider, factory: Factory, db: AsyncSession
) -> None:
    await signed_in_agent(browser, provider, factory, db)
    draft_id = draft_id_of(
        await browser.post(
            "/app/rediger/article-de-bulletin",
            data={**example_form("bulletin_article"), **csrf_field(browser)},
        )
    )
    asked = await browser.post(f"/app/brouillons/{draft_id}/effacer", data=csrf_field(browser))
    assert asked.status_code == 200
    assert asked.text.count('type="submit"') == 2  # sign-out, and « Confirmer »
    assert '<button type="submit" class="danger">Confirmer</button>' in asked.text
    assert (await browser.get(f"/v1/drafts/{draft_id}")).json()["status"] == "draft"
    done = await browser.post(
        f"/app/brouillons/{draft_id}/effacer", data={"confirme": "1", **csrf_field(browser)}
    )
    assert done.status_code == 303
    assert done.headers["location"] == "/app?efface=1"
    assert (await browser.get(f"/v1/drafts/{draft_id}")).json()["status"] == "erased"
    assert "Le brouillon a été effacé." in (await browser.get("/app?efface=1")).text


async def test_another_communes_draft_is_not_found(
    browser: AsyncClient, provider: MockProvider, factory: Factory, db: AsyncSession
) -> None:
    key = await factory.key(await factory.commune("Commune de Voisinville"), "agent")
    body = {"kind": "courrier", "subject": "Haie", "recipient": {"name": "M. Martin"}}
    foreign = await browser.post(
        "/v1/drafts", headers=key.headers, json={**body, "points": ["Taillez la haie."]}
    )
    assert foreign.status_code == 201, foreign.text
    foreign_id = foreign.json()["id"]
    browser.cookies.clear()
    await signed_in_agent(browser, provider, factory, db)
    page = await browser.get(f"/app/brouillons/{foreign_id}")
    assert page.status_code == 404
    assert "Voisinville" not in page.text
    for action, data in (("relecture", {"decision": "approved"}), ("texte", {"text": "x"})):
        response = await browser.post(
            f"/app/brouillons/{foreign_id}/{action}", data={**data, **csrf_field(browser)}
        )
        assert response.status_code == 404, action
    erase = await browser.post(
        f"/app/brouillons/{foreign_id}/effacer", data={"confirme": "1", **csrf_field(browser)}
    )
    assert erase.status_code == 404
    assert "Voisinville" not in (await browser.get("/app")).text


async def test_the_script_gets_the_draft_as_it_is_written(
    browser: AsyncClient, provider: MockProvider, factory: Factory, db: AsyncSession
) -> None:
    """plume.js posts the form to /flux and shows the text as Server-Sent Events arrive; a
    form the page must explain (errors, a synthèse) answers 422 and the script posts it."""
    await signed_in_agent(browser, provider, factory, db)
    posted = {**example_form("courrier"), **csrf_field(browser)}
    response = await browser.post("/app/rediger/courrier/flux", data=posted)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse_events(response.text)
    assert {name for name, _ in events[:-1]} == {"delta"}
    name, draft = events[-1]
    assert name == "draft"
    assert "".join(data["text"] for _, data in events[:-1]) == draft["text"]
    assert (await browser.get(f"/app/brouillons/{draft['id']}")).status_code == 200
    invalid = await browser.post("/app/rediger/courrier/flux", data={**posted, "subject": ""})
    assert invalid.status_code == 422
    assert invalid.content == b""
    source = {**example_form("synthese"), **csrf_field(browser)}
    assert (await browser.post("/app/rediger/synthese/flux", data=source)).status_code == 422
    forged = await browser.post("/app/rediger/courrier/flux", data=example_form("courrier"))
    assert forged.status_code == 403


async def test_the_home_page_shows_the_quota_left_this_month(
    browser: AsyncClient,
    client: AsyncClient,
    provider: MockProvider,
    factory: Factory,
    db: AsyncSession,
) -> None:
    who = await signed_in_agent(browser, provider, factory, db)
    operator = await factory.operator_key()
    quotas = [
        {"metric": "requests", "period": "month", "limit": 200},
        {"metric": "requests", "period": "day", "limit": 50},
    ]
    response = await client.put(
        f"/v1/admin/organizations/{who.commune.id}/quotas", headers=operator.headers, json=quotas
    )
    assert response.status_code == 200, response.text
    await browser.post(
        "/app/rediger/courrier", data={**example_form("courrier"), **csrf_field(browser)}
    )
    home = text_of((await browser.get("/app")).text)
    assert "Quota du mois" in home
    assert "Demandes : il reste 199 sur 200 jusqu’au" in home
    assert "sur 50" not in home  # the day's quota is not this month's


def test_amounts_are_written_the_french_way() -> None:
    assert amount(Decimal("1234.5"), "cost_eur") == "1\u202f234,50 €"
    assert amount(Decimal("12000"), "requests") == "12\u202f000"


async def test_a_kind_the_policy_disables_has_no_link_and_its_form_says_why(
    browser: AsyncClient, provider: MockProvider, factory: Factory, db: AsyncSession
) -> None:
    await signed_in_agent(
        browser, provider, factory, db, allowed_kinds=["courrier", "bulletin_article", "chat"]
    )
    home = (await browser.get("/app")).text
    assert 'href="/app/rediger/courrier"' in home
    assert 'href="/app/rediger/arrete"' not in home
    refused = await browser.post(
        "/app/rediger/arrete", data={**example_form("arrete"), **csrf_field(browser)}
    )
    assert refused.status_code == 403
    assert "est désactivée par la politique" in text_of(refused.text)
    assert 'role="alert"' in refused.text


async def test_an_ended_session_or_none_leads_to_the_sign_in_page(
    browser: AsyncClient, provider: MockProvider, factory: Factory, db: AsyncSession
) -> None:
    browser.cookies.set("plume_session", "x" * 43, domain="plume.test")
    assert "S’identifier avec ProConnect" in (await browser.get("/app")).text
    for path in ("/app/rediger/courrier", f"/app/brouillons/{uuid.uuid4()}"):
        response = await browser.get(path)
        assert response.status_code == 303, path
        assert response.headers["location"] == "/app"
    posted = await browser.post("/app/rediger/courrier", data=example_form("courrier"))
    assert posted.status_code == 303


async def test_signing_out_from_the_page_ends_the_session(
    browser: AsyncClient, provider: MockProvider, factory: Factory, db: AsyncSession
) -> None:
    await signed_in_agent(browser, provider, factory, db)
    response = await browser.post("/auth/logout", data=csrf_field(browser))
    assert response.status_code == 303
    assert "S’identifier avec ProConnect" in (await browser.get("/app")).text


async def test_a_letter_is_shown_in_paragraphs_with_its_headings(
    browser: AsyncClient, provider: MockProvider, factory: Factory, db: AsyncSession
) -> None:
    await signed_in_agent(browser, provider, factory, db)
    draft_id = draft_id_of(
        await browser.post(
            "/app/rediger/courrier", data={**example_form("courrier"), **csrf_field(browser)}
        )
    )
    text = "# Haie débordante\n\nMadame,\n\nVotre haie déborde sur le trottoir.\n"
    await browser.post(
        f"/app/brouillons/{draft_id}/texte", data={"text": text, **csrf_field(browser)}
    )
    html = (await browser.get(f"/app/brouillons/{draft_id}")).text
    assert "<h3>Haie débordante</h3>" in html
    assert '<p class="paragraphe">Votre haie déborde sur le trottoir.</p>' in html
