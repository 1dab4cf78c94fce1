"""The automated part of the RGAA 4.1 audit: axe-core (bundled in axe-playwright-python,
MPL-2.0) run in Chromium on every page of the workspace — an agent's, a tenant admin's (a
commune's, an EPCI's with its split) and the operator's — with the WCAG 2.1 A and AA rules
and axe's best practices. No page may have a serious or critical violation; the count by
impact of each page is printed and, under PLUME_UPDATE_DOCS=1, written to docs/workspace.md
(between the `axe` markers).

To audit another page, add a `Stop` to PAGES: its name, either a path or a function that
brings the browser there, and who is signed in (one browser; one sign-in per person, so the
stops of a person follow each other)."""

from __future__ import annotations

import re
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from itertools import groupby
from typing import Any, Literal

import pytest
from axe_playwright_python.sync_playwright import Axe

from plume.workspace import forms
from tests.workspace.live import (
    DOCS,
    UPDATE_DOCS,
    Epci,
    Live,
    LiveAgent,
    chromium,
    courriers,
    epci,
    live,
    live_agent,
    page,
    quota_field,
    sign_in,
    synthese_job,
)

__all__ = ["chromium", "epci", "live", "live_agent", "page"]

pytestmark = pytest.mark.slow

Who = Literal["nobody", "agent", "tenant admin", "EPCI admin", "operator"]


@dataclass(frozen=True)
class Cast:
    """The people signed in: the commune's secretary, and the EPCI's admins and operator."""

    agent: LiveAgent
    epci: Epci

    def email(self, who: Who) -> str:
        return {
            "agent": self.agent.email,
            "tenant admin": self.epci.commune_admin_email,
            "EPCI admin": self.epci.admin_email,
            "operator": self.epci.operator_email,
        }[who]


Visit = Callable[[Any, Live, Cast], None]
WHO_LABELS: dict[Who, str] = {
    "nobody": "personne",
    "agent": "agent",
    "tenant admin": "admin. de commune",
    "EPCI admin": "admin. d’EPCI",
    "operator": "opérateur",
}


@dataclass(frozen=True)
class Stop:
    name: str
    visit: str | Visit  # a path, or what brings the page there
    who: Who = "agent"


def _form_with_errors(page: Any, live: Live, cast: Cast) -> None:
    page.goto(f"{live.url}/app/rediger/courrier")
    with page.expect_navigation():
        page.get_by_role("button", name="Rédiger").click()


def _arrete(page: Any, live: Live, cast: Cast) -> None:
    page.goto(f"{live.url}/app/rediger/arrete?exemple=1")
    page.get_by_role("button", name="Rédiger").click()
    page.wait_for_url(f"{live.url}/app/brouillons/*")


def _erasure(page: Any, live: Live, cast: Cast) -> None:
    page.goto(f"{live.url}/app/rediger/courrier?exemple=1")
    page.get_by_role("button", name="Rédiger").click()
    page.wait_for_url(f"{live.url}/app/brouillons/*")
    with page.expect_navigation():
        page.get_by_role("button", name="Effacer").click()


def _synthese_in_progress(page: Any, live: Live, cast: Cast) -> None:
    page.goto(f"{live.url}/app/brouillons/{synthese_job(live, cast.agent, done=5, total=9)}")


def _second_page(page: Any, live: Live, cast: Cast) -> None:
    courriers(live, cast.agent, 40)
    page.goto(f"{live.url}/app")
    page.get_by_role("link", name="Suivants").click()
    page.get_by_text("Page 2").wait_for()


ADMIN = "/app/administration"


def _submit(page: Any, button: str) -> None:
    with page.expect_navigation():
        page.get_by_role("button", name=button, exact=True).click()


def _invitation_refused(page: Any, live: Live, cast: Cast) -> None:
    page.goto(f"{live.url}{ADMIN}/agents")
    _submit(page, "Inviter")
    page.get_by_role("alert").wait_for()


def _key_created(page: Any, live: Live, cast: Cast) -> None:
    page.goto(f"{live.url}{ADMIN}/cles")
    page.get_by_label("Nom").fill("Portail citoyen")
    _submit(page, "Créer la clé")
    page.locator(".valeur-secrete").wait_for()


def _revocation(page: Any, live: Live, cast: Cast) -> None:
    page.goto(f"{live.url}{ADMIN}/cles")
    _submit(page, "Révoquer Portail citoyen")
    page.get_by_role("button", name="Confirmer").wait_for()


def _chain_checked(page: Any, live: Live, cast: Cast) -> None:
    page.goto(f"{live.url}{ADMIN}/journal")
    _submit(page, "Vérifier la chaîne")
    page.locator("#resultat-verification").wait_for()


def _split_refused(page: Any, live: Live, cast: Cast) -> None:
    page.goto(f"{live.url}{ADMIN}/quotas")
    commune = cast.epci.communes[1]
    field = quota_field(page, commune)
    assert field.get_attribute("inputmode") == "decimal"  # a figures keyboard on a phone
    field.fill("5000")  # the EPCI has 1 000
    _submit(page, f"Enregistrer les quotas de {commune}")
    page.get_by_role("alert").wait_for()


def _commune_picked(page: Any, live: Live, cast: Cast) -> None:
    page.goto(f"{live.url}{ADMIN}/agents")
    page.get_by_label("Organisation administrée").select_option(label=cast.epci.communes[0])
    _submit(page, "Afficher")
    assert "?organisation=" in page.url


def _client_created(page: Any, live: Live, cast: Cast) -> None:
    page.goto(f"{live.url}{ADMIN}/clients")
    page.get_by_label("Nom").fill("Logiciel de courrier")
    _submit(page, "Créer le client")
    page.locator(".valeur-secrete").wait_for()


def _usage_with_charts(page: Any, live: Live, cast: Cast) -> None:
    page.goto(f"{live.url}/app/rediger/arrete?exemple=1")  # something to count
    page.get_by_role("button", name="Rédiger").click()
    page.wait_for_url(f"{live.url}/app/brouillons/*")
    page.goto(f"{live.url}{ADMIN}/consommation")
    assert page.locator("svg[role=img]").count() == 2


def _creation_refused(page: Any, live: Live, cast: Cast) -> None:
    page.goto(f"{live.url}/app/operateur")
    _submit(page, "Créer")
    page.get_by_role("alert").wait_for()


def _organisation(page: Any, live: Live, cast: Cast) -> None:
    page.goto(f"{live.url}/app/operateur")
    page.get_by_role("link", name=cast.epci.communes[0]).click()
    page.get_by_role("heading", name="Politique").wait_for()


def _policy_refused(page: Any, live: Live, cast: Cast) -> None:
    page.get_by_label("Population").fill("beaucoup")
    _submit(page, "Enregistrer la politique")
    page.get_by_role("alert").wait_for()


def _defaults_refused(page: Any, live: Live, cast: Cast) -> None:
    # Refused, so nothing is saved: the live database's defaults stay as other tests expect.
    page.goto(f"{live.url}/app/operateur/quotas-par-defaut")
    page.get_by_role("group", name="Requêtes (commune)").get_by_label("Requêtes par jour").fill(
        "beaucoup"
    )
    _submit(page, "Enregistrer les quotas par défaut")
    page.get_by_role("alert").wait_for()


PAGES: list[Stop] = [
    Stop("Connexion", "/app", "nobody"),
    *(Stop(f"Formulaire : {form.label}", f"/app/rediger/{form.slug}") for form in forms.FORMS),
    Stop("Formulaire rempli (exemple de délibération)", "/app/rediger/deliberation?exemple=1"),
    Stop("Formulaire avec erreurs", _form_with_errors),
    Stop("Brouillon d'arrêté (avertissements, [À COMPLÉTER])", _arrete),
    Stop("Confirmation d'effacement", _erasure),
    Stop("Synthèse en cours (barre d'avancement)", _synthese_in_progress),
    Stop("Accueil : Mes brouillons", "/app"),
    Stop("Accueil : page 2 (Précédents, Suivants)", _second_page),
    Stop("Erreur 404", f"/app/brouillons/{uuid.UUID(int=0)}"),
    # A commune's administrator.
    Stop("Administration : vue d’ensemble", ADMIN, "tenant admin"),
    Stop("Administration : agents", f"{ADMIN}/agents", "tenant admin"),
    Stop("Administration : invitation refusée (erreurs)", _invitation_refused, "tenant admin"),
    Stop("Administration : clients OAuth2", f"{ADMIN}/clients", "tenant admin"),
    Stop("Administration : clés d’API", f"{ADMIN}/cles", "tenant admin"),
    Stop("Administration : clé créée (secret affiché une fois)", _key_created, "tenant admin"),
    Stop("Administration : confirmation de révocation", _revocation, "tenant admin"),
    Stop("Administration : quotas d’une commune", f"{ADMIN}/quotas", "tenant admin"),
    Stop("Administration : consommation (sans données)", f"{ADMIN}/consommation", "tenant admin"),
    Stop("Administration : journal, chaîne vérifiée", _chain_checked, "tenant admin"),
    # An EPCI's administrator.
    Stop("EPCI : répartition des quotas", f"{ADMIN}/quotas", "EPCI admin"),
    Stop("EPCI : répartition refusée (erreurs)", _split_refused, "EPCI admin"),
    Stop("EPCI : une commune choisie (?organisation=)", _commune_picked, "EPCI admin"),
    Stop("EPCI : client créé (secret affiché une fois)", _client_created, "EPCI admin"),
    Stop("EPCI : consommation avec graphes", _usage_with_charts, "EPCI admin"),
    Stop("EPCI : journal d’audit", f"{ADMIN}/journal", "EPCI admin"),
    # The operator.
    Stop("Opérateur : organisations", "/app/operateur", "operator"),
    Stop("Opérateur : création refusée (erreurs)", _creation_refused, "operator"),
    Stop("Opérateur : une organisation", _organisation, "operator"),
    Stop("Opérateur : politique refusée (erreurs)", _policy_refused, "operator"),
    Stop("Opérateur : quotas par défaut", "/app/operateur/quotas-par-defaut", "operator"),
    Stop("Opérateur : quotas par défaut refusés (erreurs)", _defaults_refused, "operator"),
    Stop("Opérateur : quotas et consommation", "/app/operateur/consommation", "operator"),
]

# WCAG 2.1 A and AA (what RGAA 4.1 transposes), and axe's best practices (landmarks,
# headings, a main region...).
AXE_OPTIONS = {
    "runOnly": {
        "type": "tag",
        "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"],
    },
    "resultTypes": ["violations"],
}
IMPACTS = ("critical", "serious", "moderate", "minor")
BLOCKING = ("critical", "serious")
START, END = "<!-- axe:start -->", "<!-- axe:end -->"


def test_no_page_has_a_serious_or_critical_violation(
    page: Any, live: Live, live_agent: LiveAgent, epci: Epci
) -> None:
    axe = Axe()
    # The audit itself can see: a page with an image without text and no language fails it.
    page.set_content('<html><body><img src="/plume.png"><p>Texte</p></body></html>')
    found = {
        v["id"]: v["impact"] for v in axe.run(page, options=AXE_OPTIONS).response["violations"]
    }
    assert found["image-alt"] == "critical"
    assert found["html-has-lang"] == "serious"
    # One sign-in per person: a person's stops follow each other.
    runs = [who for who, _ in groupby(stop.who for stop in PAGES)]
    assert len(runs) == len(set(runs)), runs
    cast = Cast(live_agent, epci)
    signed_in: Who = "nobody"
    summary: list[tuple[Stop, Counter[str], list[str]]] = []
    for stop in PAGES:
        if stop.who != signed_in:
            page.context.clear_cookies()
            if stop.who != "nobody":
                sign_in(page, live, cast.email(stop.who))
            signed_in = stop.who
        if isinstance(stop.visit, str):
            page.goto(f"{live.url}{stop.visit}")
        else:
            stop.visit(page, live, cast)
        violations = axe.run(page, options=AXE_OPTIONS).response["violations"]
        counts = Counter(str(v["impact"]) for v in violations)
        rules = [f"{v['id']} ({v['impact']}, {len(v['nodes'])})" for v in violations]
        summary.append((stop, counts, rules))
        print(f"axe — {stop.name}: " + (", ".join(rules) or "aucune violation"))
        for violation in violations:
            if violation["impact"] in BLOCKING:  # where, to fix it
                for node in violation["nodes"]:
                    print(f"    {violation['id']}: {node['html']}")
    if UPDATE_DOCS:
        write_summary(summary)
    blocking = [
        (stop.name, rules) for stop, counts, rules in summary if any(counts[i] for i in BLOCKING)
    ]
    assert blocking == []


def write_summary(summary: list[tuple[Stop, Counter[str], list[str]]]) -> None:
    """The table of docs/workspace.md's axe section, rewritten by each run."""
    lines = [
        START,
        "| page | connecté(e) | critique | grave | modérée | mineure | règles en défaut |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for stop, counts, rules in summary:
        cells = " | ".join(str(counts[impact]) for impact in IMPACTS)
        lines.append(
            f"| {stop.name} | {WHO_LABELS[stop.who]} | {cells} | {', '.join(rules) or '—'} |"
        )
    lines.append(END)
    doc = DOCS / "workspace.md"
    text = doc.read_text(encoding="utf-8")
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.S)
    assert pattern.search(text), "docs/workspace.md has no axe section to fill"
    doc.write_text(pattern.sub(lambda _: "\n".join(lines), text), encoding="utf-8")
