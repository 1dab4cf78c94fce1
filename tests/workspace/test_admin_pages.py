"""The administration's pages over HTTP, as a browser gets them: who may open them (a tenant
admin, the operator; agents and keys refused), each action through the API's services
(agents, OAuth2 clients and keys with their secret shown once, an EPCI's split of its quotas,
usage with its charts and CSV, the audit trail and its verification, the operator's
organisations), and an admin of one commune unable to see or change another's."""

from __future__ import annotations

import re
import uuid

from httpx import AsyncClient, Response
from sqlalchemy.ext.asyncio import AsyncSession

from plume.models import Agent, AgentStatus, Organization
from tests.identity.helpers import fresh_email, invited, sign_in
from tests.identity.provider import MockProvider
from tests.support.factories import Factory, Key
from tests.support.quotas import set_quotas
from tests.workspace.helpers import csrf_field, signed_in_agent, text_of
from tests.workspace.test_pages import assert_secure_page, example_form

ADMIN = "/app/administration"


async def signed_in_admin_of(
    browser: AsyncClient, provider: MockProvider, db: AsyncSession, organization: Organization
) -> Agent:
    email = fresh_email()
    agent = await invited(db, organization, email, role="tenant_admin", title="Directrice")
    response = await sign_in(browser, provider, email)
    assert response.status_code == 302, response.text
    return agent


async def post(browser: AsyncClient, url: str, **fields: str) -> Response:
    return await browser.post(url, data={**fields, **csrf_field(browser)})


async def epci_with_communes(factory: Factory) -> tuple[Organization, Organization, Organization]:
    epci = await factory.epci("Communauté de la Côte d'Albâtre")
    first = await factory.commune("Commune de Veules-les-Roses", parent=epci)
    second = await factory.commune("Commune de Sotteville-sur-Mer", parent=epci)
    return epci, first, second


# -- who may open them -----------------------------------------------------------------------


async def test_a_visitor_is_sent_to_sign_in(browser: AsyncClient) -> None:
    for url in (ADMIN, f"{ADMIN}/agents", f"{ADMIN}/quotas", "/app/operateur"):
        response = await browser.get(url)
        assert response.status_code == 303, url
        assert response.headers["location"] == "/app"


async def test_an_agent_is_refused_the_administration_in_french(
    browser: AsyncClient, provider: MockProvider, factory: Factory, db: AsyncSession
) -> None:
    await signed_in_agent(browser, provider, factory, db)
    assert "/app/administration" not in (await browser.get("/app")).text
    for url in (ADMIN, f"{ADMIN}/agents", f"{ADMIN}/cles", f"{ADMIN}/journal", "/app/operateur"):
        response = await browser.get(url)
        assert response.status_code == 403, url
        assert response.headers["content-type"].startswith("text/html")
        assert '<html lang="fr">' in response.text
        assert "Ces pages sont réservées" in text_of(response.text)
        assert 'role="alert"' in response.text
    invite = await post(browser, f"{ADMIN}/agents", email=fresh_email(), role="tenant_admin")
    assert invite.status_code == 403


async def test_a_tenant_admin_is_refused_the_operators_pages(
    browser: AsyncClient, provider: MockProvider, factory: Factory, db: AsyncSession
) -> None:
    commune = await factory.commune("Commune d'Yport")
    await signed_in_admin_of(browser, provider, db, commune)
    home = await browser.get("/app")
    assert 'href="/app/administration"' in home.text
    assert 'href="/app/operateur"' not in home.text
    for url in ("/app/operateur", "/app/operateur/consommation", "/app/operateur/consommation.csv"):
        response = await browser.get(url)
        assert response.status_code == 403, url
        assert "réservées à l’opérateur" in text_of(response.text).replace("'", "’")
    created = await post(
        browser, "/app/operateur/organisations", kind="commune", name="Intruse", insee_code="76999"
    )
    assert created.status_code == 403
    assert "Intruse" not in (await browser.get(ADMIN)).text


async def test_every_administration_page_is_french_and_secure(
    browser: AsyncClient, provider: MockProvider, factory: Factory, db: AsyncSession
) -> None:
    commune = await factory.commune("Commune d'Étretat")
    await signed_in_admin_of(browser, provider, db, commune)
    titles = {
        "": "Administration",
        "/agents": "Agents",
        "/clients": "Clients OAuth2",
        "/cles": "Clés d’API",
        "/quotas": "Quotas",
        "/consommation": "Consommation",
        "/journal": "Journal d’audit",
    }
    for path, title in titles.items():
        response = await browser.get(f"{ADMIN}{path}")
        assert response.status_code == 200, (path, response.text)
        assert_secure_page(response)
        assert f"<title>{title} — Commune d" in response.text, path
        assert 'aria-label="Administration"' in response.text


# -- agents ----------------------------------------------------------------------------------


async def test_an_admin_invites_changes_and_suspends_an_agent(
    browser: AsyncClient, provider: MockProvider, factory: Factory, db: AsyncSession
) -> None:
    commune = await factory.commune("Commune de Fécamp")
    await signed_in_admin_of(browser, provider, db, commune)
    email = fresh_email()
    invite = await post(
        browser, f"{ADMIN}/agents", email=email, role="agent", title="Secrétaire générale de mairie"
    )
    assert invite.status_code == 303, invite.text
    page = text_of((await browser.get(f"{ADMIN}/agents")).text)
    assert email in page
    assert "Invité(e)" in page
    agent_id = re.search(rf'<label for="role-([0-9a-f-]{{36}})">Rôle de {re.escape(email)}<', page)
    assert agent_id, page
    url = f"{ADMIN}/agents/{agent_id.group(1)}"

    changed = await post(browser, url, role="tenant_admin", title="Maire adjointe")
    assert changed.status_code == 303
    page = text_of((await browser.get(f"{ADMIN}/agents")).text)
    assert 'value="Maire adjointe"' in page

    suspended = await post(browser, url, status="suspended")
    assert suspended.status_code == 303
    page = text_of((await browser.get(f"{ADMIN}/agents")).text)
    assert "Suspendu(e)" in page
    assert f'aria-label="Réactiver {email}"' in page
    stored = await db.get(Agent, uuid.UUID(agent_id.group(1)), populate_existing=True)
    assert stored is not None
    assert stored.status is AgentStatus.SUSPENDED

    trail = text_of((await browser.get(f"{ADMIN}/journal", params={"action": "agent.update"})).text)
    assert trail.count("<code>agent.update</code>") == 2


async def test_an_invitation_with_errors_says_so_in_french(
    browser: AsyncClient, provider: MockProvider, factory: Factory, db: AsyncSession
) -> None:
    commune = await factory.commune("Commune de Bénouville")
    admin = await signed_in_admin_of(browser, provider, db, commune)
    wrong = await post(browser, f"{ADMIN}/agents", email="pas-une-adresse", role="agent")
    assert wrong.status_code == 422
    html = text_of(wrong.text)
    assert 'role="alert"' in html
    assert "<title>Erreur — Agents" in html
    assert 'id="champ-email-erreur">Adresse électronique invalide.' in html
    assert 'value="pas-une-adresse"' in html
    twice = await post(browser, f"{ADMIN}/agents", email=admin.email, role="agent")
    assert twice.status_code == 409
    assert "a déjà l'adresse" in text_of(twice.text)


async def test_a_post_without_its_csrf_token_is_refused(
    browser: AsyncClient, provider: MockProvider, factory: Factory, db: AsyncSession
) -> None:
    commune = await factory.commune("Commune de Varengeville")
    await signed_in_admin_of(browser, provider, db, commune)
    email = fresh_email()
    response = await browser.post(f"{ADMIN}/agents", data={"email": email, "role": "agent"})
    assert response.status_code == 403
    assert "CSRF" in response.text
    assert email not in (await browser.get(f"{ADMIN}/agents")).text


# -- OAuth2 clients and API keys -------------------------------------------------------------


async def test_a_keys_secret_is_shown_once_and_revoking_asks_to_confirm(
    browser: AsyncClient, provider: MockProvider, factory: Factory, db: AsyncSession
) -> None:
    commune = await factory.commune("Commune de Saint-Valery-en-Caux")
    await signed_in_admin_of(browser, provider, db, commune)
    past = await post(
        browser, f"{ADMIN}/cles", name="Portail", role="agent", expires_at="2020-01-01"
    )
    assert past.status_code == 422
    assert 'id="champ-expires_at-erreur">La date d' in text_of(past.text)
    created = await post(browser, f"{ADMIN}/cles", name="Portail citoyen", role="agent")
    assert created.status_code == 200, created.text
    assert created.headers["cache-control"] == "no-store"
    secret = re.search(r'class="valeur-secrete">(plm_[^<]+)<', created.text)
    assert secret, created.text
    assert "ne pourra plus jamais" in text_of(created.text)
    # The key works, as the API's would.
    me = await browser.get("/v1/me", headers={"Authorization": f"Bearer {secret.group(1)}"})
    assert me.status_code == 200
    assert me.json()["name"] == "Portail citoyen"
    listing = await browser.get(f"{ADMIN}/cles")
    assert "Portail citoyen" in listing.text
    assert secret.group(1) not in listing.text
    key_id = re.search(r'action="/app/administration/cles/([0-9a-f-]{36})/revoquer"', listing.text)
    assert key_id
    url = f"{ADMIN}/cles/{key_id.group(1)}/revoquer"
    asked = await post(browser, url)
    assert asked.status_code == 200
    assert '<button type="submit" class="danger">Confirmer</button>' in asked.text
    assert (await browser.get("/v1/me", headers=me.request.headers)).status_code == 200
    confirmed = await post(browser, url, confirme="1")
    assert confirmed.status_code == 303
    assert (await browser.get("/v1/me", headers=me.request.headers)).status_code == 401
    assert "Révoqué(e)" in (await browser.get(f"{ADMIN}/cles")).text


async def test_a_clients_secret_is_shown_once_and_it_can_be_revoked(
    browser: AsyncClient, provider: MockProvider, factory: Factory, db: AsyncSession
) -> None:
    commune = await factory.commune("Commune de Dieppe")
    await signed_in_admin_of(browser, provider, db, commune)
    bad = await post(browser, f"{ADMIN}/clients", name="  ", role="agent")
    assert bad.status_code == 422
    assert 'id="champ-name-erreur">Ne peut pas être vide.' in text_of(bad.text)
    created = await post(browser, f"{ADMIN}/clients", name="Logiciel d'état civil", role="agent")
    assert created.status_code == 200, created.text
    secret = re.search(r'class="valeur-secrete">(plcs_[^<]+)<', created.text)
    client_id = re.search(r"<code>(plc_[^<]+)</code>", created.text)
    assert secret, created.text
    assert client_id, created.text
    token = await browser.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(client_id.group(1), secret.group(1)),
    )
    assert token.status_code == 200, token.text
    listing = await browser.get(f"{ADMIN}/clients")
    assert client_id.group(1) in listing.text
    assert secret.group(1) not in listing.text
    found = re.search(
        r'action="/app/administration/clients/([0-9a-f-]{36})/revoquer"', listing.text
    )
    assert found
    assert (await post(browser, f"{ADMIN}/clients/{found.group(1)}/revoquer")).status_code == 200
    revoked = await post(browser, f"{ADMIN}/clients/{found.group(1)}/revoquer", confirme="1")
    assert revoked.status_code == 303
    again = await browser.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(client_id.group(1), secret.group(1)),
    )
    assert again.status_code == 401


# -- another tenant's ------------------------------------------------------------------------


async def test_an_admin_of_one_commune_cannot_see_or_change_anothers(
    browser: AsyncClient, provider: MockProvider, factory: Factory, db: AsyncSession
) -> None:
    mine = await factory.commune("Commune d'Ici")
    other = await factory.commune("Commune de Là-Bas")
    other_agent = await invited(db, other, fresh_email(), role="agent")
    other_key = await factory.key(other, "agent")
    await signed_in_admin_of(browser, provider, db, mine)

    for path in ("", "/agents", "/clients", "/cles", "/quotas", "/consommation", "/journal"):
        response = await browser.get(f"{ADMIN}{path}", params={"organisation": str(other.id)})
        assert response.status_code == 404, path
        assert other.name not in response.text
    csv = await browser.get(f"{ADMIN}/consommation.csv", params={"organisation": str(other.id)})
    assert csv.status_code == 404
    assert 'value="' + str(other.id) not in (await browser.get(f"{ADMIN}/agents")).text

    changed = await post(browser, f"{ADMIN}/agents/{other_agent.id}", role="tenant_admin")
    assert changed.status_code == 404
    suspended = await post(browser, f"{ADMIN}/agents/{other_agent.id}", status="suspended")
    assert suspended.status_code == 404
    stored = await db.get(Agent, other_agent.id, populate_existing=True)
    assert stored is not None
    assert stored.status is AgentStatus.INVITED
    invited_there = await post(
        browser, f"{ADMIN}/agents", email=fresh_email(), role="agent", organisation=str(other.id)
    )
    assert invited_there.status_code == 404
    minted = await post(
        browser, f"{ADMIN}/cles", name="Intruse", role="agent", organisation=str(other.id)
    )
    assert minted.status_code == 404
    for confirm in ("", "1"):
        revoked = await post(browser, f"{ADMIN}/cles/{other_key.id}/revoquer", confirme=confirm)
        assert revoked.status_code == 404
        assert other.name not in revoked.text
    assert (await browser.get("/v1/me", headers=other_key.headers)).status_code == 200
    split = await post(browser, f"{ADMIN}/quotas/{other.id}", limite_requests_month="10")
    assert split.status_code == 403  # a commune's admin splits nothing


# -- quotas: an EPCI's split -----------------------------------------------------------------


async def test_an_epci_admin_splits_its_allowance_among_its_communes(
    browser: AsyncClient, provider: MockProvider, factory: Factory, db: AsyncSession
) -> None:
    epci, first, second = await epci_with_communes(factory)
    stranger = await factory.commune("Commune d'un autre EPCI", parent=await factory.epci("Autre"))
    operator = await factory.operator_key()
    quota = [{"metric": "requests", "period": "month", "limit": 1000}]
    assert (await set_quotas(browser, operator, epci, quota)).status_code == 200
    await signed_in_admin_of(browser, provider, db, epci)

    page = text_of((await browser.get(f"{ADMIN}/quotas")).text)
    assert "Répartition entre les communes" in page
    assert f"<legend>{first.name}</legend>" in page
    assert f"<legend>{second.name}</legend>" in page
    assert f'<option value="{first.id}">{first.name}</option>' in page
    # The picker shows the same section for the chosen commune.
    assert '<form method="get" action="/app/administration/quotas" class="choix-commune">' in page

    saved = await post(browser, f"{ADMIN}/quotas/{first.id}", limite_requests_month="600")
    assert saved.status_code == 303, saved.text
    page = text_of((await browser.get(saved.headers["location"])).text)
    assert f"Les quotas de « {first.name} » sont enregistrés." in page
    assert '<td class="reparti">600</td>' in page

    refused = await post(browser, f"{ADMIN}/quotas/{second.id}", limite_requests_month="500")
    assert refused.status_code == 422
    html = text_of(refused.text)
    assert 'role="alert"' in html
    assert "il reste au plus 400 à répartir pour cette commune" in html
    assert f'id="quota-{second.id}-limite_requests_month-erreur"' in html
    assert 'value="500"' in html

    words = await post(browser, f"{ADMIN}/quotas/{second.id}", limite_requests_month="beaucoup")
    assert words.status_code == 422
    assert "indiquez un nombre" in text_of(words.text)

    assert (
        await post(browser, f"{ADMIN}/quotas/{second.id}", limite_requests_month="400")
    ).status_code == 303
    page = text_of((await browser.get(f"{ADMIN}/quotas")).text)
    assert '<td class="reparti">1\u202f000</td>' in page
    api = await browser.get("/v1/quotas", params={"organization_id": str(second.id)})
    limits = {(q["organization_id"], q["metric"]): q["limit"] for q in api.json()["items"]}
    assert limits[(str(second.id), "requests")] == 400

    # An empty field removes the commune's quota; another EPCI's commune is not one's own.
    assert (
        await post(browser, f"{ADMIN}/quotas/{first.id}", limite_requests_month="")
    ).status_code == 303
    assert '<td class="reparti">400</td>' in text_of((await browser.get(f"{ADMIN}/quotas")).text)
    assert (
        await post(browser, f"{ADMIN}/quotas/{stranger.id}", limite_requests_month="1")
    ).status_code == 404
    # The EPCI's admin administers its communes too (and only them).
    agents = await browser.get(f"{ADMIN}/agents", params={"organisation": str(first.id)})
    assert agents.status_code == 200
    assert f"Agents : {first.name}" in text_of(agents.text)
    assert (
        await browser.get(f"{ADMIN}/agents", params={"organisation": str(stranger.id)})
    ).status_code == 404


# -- usage and the audit trail ---------------------------------------------------------------


async def test_usage_is_shown_by_month_and_kind_with_charts_and_csv(
    browser: AsyncClient, provider: MockProvider, factory: Factory, db: AsyncSession
) -> None:
    commune = await factory.commune("Commune de Criel-sur-Mer")
    await signed_in_admin_of(browser, provider, db, commune)
    drafted = await browser.post(
        "/app/rediger/arrete", data={**example_form("arrete"), **csrf_field(browser)}
    )
    assert drafted.status_code == 303, drafted.text

    page = await browser.get(f"{ADMIN}/consommation")
    assert page.status_code == 200
    html = text_of(page.text)
    assert html.count('role="img"') == 2
    assert "<figcaption" in html
    assert "Requêtes par mois" in html
    assert "<desc" in html
    assert "Arrêté : 1" in html
    assert '<th scope="row">Arrêté</th><td>1</td>' in html
    assert "style=" not in html
    tokens = await browser.get(f"{ADMIN}/consommation", params={"mesure": "tokens"})
    assert "Jetons par type de document" in text_of(tokens.text)

    link = re.search(r'href="(/app/administration/consommation\.csv\?[^"]+)"', html)
    assert link
    csv = await browser.get(link.group(1).replace("&amp;", "&"))
    assert csv.status_code == 200
    assert csv.headers["content-type"].startswith("text/csv")
    assert "attachment" in csv.headers["content-disposition"]
    lines = csv.text.strip().splitlines()
    assert lines[0].startswith("key,")
    assert lines[-1].startswith("total,")
    assert len(lines) == 3  # this month, then the total

    wrong = await browser.get(f"{ADMIN}/consommation", params={"du": "2026-13-45"})
    assert wrong.status_code == 422
    assert 'role="alert"' in wrong.text
    assert "AAAA-MM-JJ" in wrong.text


async def test_the_audit_trail_is_listed_filtered_and_its_chain_verified(
    browser: AsyncClient, provider: MockProvider, factory: Factory, db: AsyncSession
) -> None:
    commune = await factory.commune("Commune de Mesnil-Val")
    await signed_in_admin_of(browser, provider, db, commune)
    await post(browser, f"{ADMIN}/agents", email=fresh_email(), role="agent")
    page = text_of((await browser.get(f"{ADMIN}/journal")).text)
    assert "<code>agent.sign_in</code>" in page
    assert "<code>agent.invite</code>" in page
    assert '<button type="submit" class="principal">Vérifier la chaîne</button>' in page
    filtered = text_of(
        (await browser.get(f"{ADMIN}/journal", params={"action": "agent.invite"})).text
    )
    assert "<code>agent.invite</code>" in filtered
    assert "<code>agent.sign_in</code>" not in filtered
    checked = text_of((await browser.get(f"{ADMIN}/journal", params={"verifier": "1"})).text)
    assert re.search(r"Chaîne intègre : \d+ entrée\(s\) vérifiée\(s\)", checked)


async def test_the_audit_trail_pages_through_older_entries(
    browser: AsyncClient, provider: MockProvider, factory: Factory, db: AsyncSession
) -> None:
    commune = await factory.commune("Commune de Quiberville")
    await signed_in_admin_of(browser, provider, db, commune)
    for _ in range(51):
        await post(browser, f"{ADMIN}/agents", email=fresh_email(), role="agent")
    first = text_of((await browser.get(f"{ADMIN}/journal")).text)
    assert first.count("<code>agent.") == 50
    more = re.search(
        r'href="(/app/administration/journal\?[^"]*suite=[^"]+)">Entrées plus anciennes', first
    )
    assert more
    older = text_of((await browser.get(more.group(1).replace("&amp;", "&"))).text)
    assert older.count("<code>agent.") == 2  # the first invitation and the sign-in
    assert "Entrées plus anciennes" not in older


# -- the operator ----------------------------------------------------------------------------


async def signed_in_operator(
    browser: AsyncClient, provider: MockProvider, factory: Factory, db: AsyncSession
) -> Organization:
    operator = await factory.operator()
    await signed_in_admin_of(browser, provider, db, operator)
    return operator


async def test_the_operator_creates_suspends_and_sets_an_organisations_policy(
    browser: AsyncClient, provider: MockProvider, factory: Factory, db: AsyncSession
) -> None:
    epci = await factory.epci("Communauté urbaine de test")
    await signed_in_operator(browser, provider, factory, db)
    home = await browser.get("/app/operateur")
    assert home.status_code == 200, home.text
    assert_secure_page(home)
    assert epci.name in text_of(home.text)
    assert 'href="/app/operateur"' in home.text

    unknown = await browser.get(f"/app/operateur/organisations/{uuid.uuid4()}")
    assert unknown.status_code == 404
    missing = await post(browser, "/app/operateur/organisations", kind="commune", name="Sans code")
    assert missing.status_code == 422
    assert 'id="champ-insee_code-erreur">Obligatoire pour une commune.' in text_of(missing.text)

    created = await post(
        browser,
        "/app/operateur/organisations",
        kind="commune",
        name="Commune nouvelle",
        parent_id=str(epci.id),
        insee_code="76998",
    )
    assert created.status_code == 303, created.text
    detail_url = created.headers["location"]
    detail = text_of((await browser.get(detail_url)).text)
    assert "<h1>Commune nouvelle</h1>" in detail
    assert epci.name in detail
    organization_id = detail_url.rsplit("/", 1)[1]

    assert (await post(browser, f"{detail_url}/statut", status="suspended")).status_code == 303
    assert "Suspendue" in (await browser.get(detail_url)).text
    assert (await post(browser, f"{detail_url}/statut", status="active")).status_code == 303

    policy = await browser.post(
        f"{detail_url}/politique",
        data={
            "fixer_allowed_kinds": "1",
            "allowed_kinds": ["arrete", "courrier"],
            "retention_days": "30",
            "population": "1200",
            "mayor.name": "Claire Dubois",
            "mayor.title": "Maire",
            **csrf_field(browser),
        },
    )
    assert policy.status_code == 303, policy.text
    operator_key = await factory.operator_key()
    read = await browser.get(
        f"/v1/admin/organizations/{organization_id}", headers=operator_key.headers
    )
    own = read.json()["own_policy"]
    assert own["allowed_kinds"] == ["arrete", "courrier"]
    assert own["retention_days"] == 30
    assert own["population"] == 1200
    assert own["mayor"] == {"name": "Claire Dubois", "title": "Maire"}

    bad = await post(browser, f"{detail_url}/politique", population="beaucoup")
    assert bad.status_code == 422
    assert "<li>Population : " in text_of(bad.text)
    assert 'role="alert"' in bad.text

    quotas = await post(
        browser, f"{detail_url}/quotas", limite_requests_month="250", limite_cost_eur_month="12,50"
    )
    assert quotas.status_code == 303
    page = text_of((await browser.get(detail_url)).text)
    assert "<td>250</td>" in page
    assert "12,50 €" in page


async def test_the_operator_sees_usage_and_quotas_across_tenants(
    browser: AsyncClient, provider: MockProvider, factory: Factory, db: AsyncSession
) -> None:
    commune = await factory.commune("Commune d'Arques-la-Bataille")
    operator_key = await factory.operator_key()
    quota = [{"metric": "requests", "period": "month", "limit": 300}]
    assert (await set_quotas(browser, operator_key, commune, quota)).status_code == 200
    agent_key: Key = await factory.key(commune, "agent")
    drafted = await browser.post(
        "/v1/drafts",
        json={"kind": "bulletin_article", "subject": "Fête du village", "key_points": ["samedi"]},
        headers=agent_key.headers,
    )
    assert drafted.status_code == 201, drafted.text
    await signed_in_operator(browser, provider, factory, db)
    page = await browser.get("/app/operateur/consommation")
    assert page.status_code == 200, page.text
    html = text_of(page.text)
    assert (
        f'<a href="/app/operateur/organisations/{commune.id}">{commune.name}</a></th><td>1</td>'
        in html
    )
    assert "<tfoot>" in html
    assert html.count('role="img"') == 2
    assert "Quotas du mois" in html
    assert "<td>300</td>" in html
    csv = await browser.get("/app/operateur/consommation.csv")
    assert csv.status_code == 200
    assert commune.slug in csv.text
    assert csv.text.strip().splitlines()[-1].startswith("total,")


async def test_only_the_operators_administrators_act_as_operator(
    browser: AsyncClient, provider: MockProvider, factory: Factory, db: AsyncSession
) -> None:
    """An agent of the operator's organisation stays an agent: no operator's pages, no
    administration, no admin route of the API."""
    operator = await factory.operator()
    email = fresh_email()
    await invited(db, operator, email, role="agent")
    assert (await sign_in(browser, provider, email)).status_code == 302
    assert (await browser.get("/app/operateur")).status_code == 403
    assert (await browser.get(ADMIN)).status_code == 403
    assert (await browser.get("/v1/admin/organizations")).status_code == 403
