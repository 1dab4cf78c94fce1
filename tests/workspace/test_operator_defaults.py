"""The operator's default quotas page (/app/operateur/quotas-par-defaut) over HTTP: the
operator reads and sets the quotas each new EPCI or commune is given, through the service of
PUT /v1/admin/default-quotas (the API reads them back, a commune created afterwards has
them, the change is in the operator's audit chain); a bad amount is refused naming its field,
nothing saved; a tenant admin is refused."""

from __future__ import annotations

import json

from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from plume.models import AuditEntry
from tests.identity.provider import MockProvider
from tests.support.factories import Factory
from tests.workspace.helpers import text_of
from tests.workspace.test_admin_pages import post, signed_in_admin_of, signed_in_operator
from tests.workspace.test_pages import assert_secure_page

PAGE = "/app/operateur/quotas-par-defaut"


async def test_the_operator_sets_the_quotas_each_new_organisation_is_given(
    browser: AsyncClient, provider: MockProvider, factory: Factory, db: AsyncSession
) -> None:
    operator = await signed_in_operator(browser, provider, factory, db)
    page = await browser.get(PAGE)
    assert page.status_code == 200, page.text
    assert_secure_page(page)
    html = text_of(page.text)
    assert "<h1>Quotas par défaut</h1>" in html
    assert f'<a href="{PAGE}" aria-current="page">' in html
    assert 'id="champ-defaut_commune_requests_month"' in html
    assert 'id="champ-defaut_epci_cost_eur_month"' in html

    saved = await post(
        browser,
        PAGE,
        defaut_commune_requests_month="1 200",
        defaut_epci_cost_eur_month="12,50",
    )
    assert saved.status_code == 303, saved.text
    assert saved.headers["location"] == f"{PAGE}?enregistre=1"
    html = text_of((await browser.get(saved.headers["location"])).text)
    assert "Les quotas par défaut sont enregistrés." in html
    assert 'value="1\u202f200"' in html
    assert 'value="12,50 €"' in html

    key = await factory.operator_key()
    api = await browser.get("/v1/admin/default-quotas", headers=key.headers)
    assert api.json()["items"] == [
        {"kind": "epci", "metric": "cost_eur", "period": "month", "limit": 12.5},
        {"kind": "commune", "metric": "requests", "period": "month", "limit": 1200},
    ]
    recorded = await db.scalar(
        select(AuditEntry.body)
        .where(AuditEntry.organization_id == operator.id)
        .where(AuditEntry.action == "quota.defaults_updated")
        .order_by(AuditEntry.seq.desc())
    )
    assert recorded is not None
    assert json.loads(recorded)["details"]["default_quotas"] == [
        {"kind": "epci", "metric": "cost_eur", "period": "month", "limit": "12.50"},
        {"kind": "commune", "metric": "requests", "period": "month", "limit": "1200"},
    ]

    created = await post(
        browser,
        "/app/operateur/organisations",
        kind="commune",
        name="Commune neuve",
        insee_code="76997",
    )
    assert created.status_code == 303, created.text
    detail = text_of((await browser.get(created.headers["location"])).text)
    assert '<th scope="row">Requêtes par mois</th><td>1\u202f200</td>' in detail

    refused = await post(
        browser, PAGE, defaut_commune_requests_month="beaucoup", defaut_epci_tokens_day="5000"
    )
    assert refused.status_code == 422
    html = text_of(refused.text)
    assert 'role="alert"' in html
    assert "<li>Commune : Requêtes par mois : indiquez un nombre" in html
    assert 'value="beaucoup"' in html  # what was typed, to correct
    assert 'aria-invalid="true"' in html
    again = await browser.get("/v1/admin/default-quotas", headers=key.headers)
    assert again.json() == api.json()  # nothing saved

    cleared = await post(browser, PAGE)
    assert cleared.status_code == 303
    assert (await browser.get("/v1/admin/default-quotas", headers=key.headers)).json() == {
        "items": []
    }


async def test_a_tenant_admin_cannot_open_or_set_the_default_quotas(
    browser: AsyncClient, provider: MockProvider, factory: Factory, db: AsyncSession
) -> None:
    epci = await factory.epci("Communauté de test")
    key = await factory.operator_key()
    before = (await browser.get("/v1/admin/default-quotas", headers=key.headers)).json()
    await signed_in_admin_of(browser, provider, db, epci)
    assert (await browser.get(PAGE)).status_code == 403
    refused = await post(browser, PAGE, defaut_commune_requests_month="1")
    assert refused.status_code == 403
    assert "Quotas par défaut" not in refused.text
    after = await browser.get("/v1/admin/default-quotas", headers=key.headers)
    assert after.json() == before
