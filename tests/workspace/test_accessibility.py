"""The automated part of the RGAA 4.1 audit: axe-core (bundled in axe-playwright-python,
MPL-2.0) run in Chromium on every page an agent sees, with the WCAG 2.1 A and AA rules and
axe's best practices. No page may have a serious or critical violation; the count by impact
of each page is printed and written to docs/workspace.md (between the `axe` markers).

To audit another page, append a `Stop` to PAGES: its name, and either a path or a function
that brings the browser there (signed in as the live secretary unless `signed_in=False`)."""

from __future__ import annotations

import re
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe

from plume.workspace import forms
from tests.workspace.live import (
    DOCS,
    UPDATE_DOCS,
    Live,
    LiveAgent,
    chromium,
    courriers,
    live,
    live_agent,
    page,
    sign_in,
    synthese_job,
)

__all__ = ["chromium", "live", "live_agent", "page"]

pytestmark = pytest.mark.slow

Visit = Callable[[Any, Live, LiveAgent], None]


@dataclass(frozen=True)
class Stop:
    name: str
    visit: str | Visit  # a path, or what brings the page there
    signed_in: bool = True


def _form_with_errors(page: Any, live: Live, agent: LiveAgent) -> None:
    page.goto(f"{live.url}/app/rediger/courrier")
    with page.expect_navigation():
        page.get_by_role("button", name="Rédiger").click()


def _arrete(page: Any, live: Live, agent: LiveAgent) -> None:
    page.goto(f"{live.url}/app/rediger/arrete?exemple=1")
    page.get_by_role("button", name="Rédiger").click()
    page.wait_for_url(f"{live.url}/app/brouillons/*")


def _erasure(page: Any, live: Live, agent: LiveAgent) -> None:
    page.goto(f"{live.url}/app/rediger/courrier?exemple=1")
    page.get_by_role("button", name="Rédiger").click()
    page.wait_for_url(f"{live.url}/app/brouillons/*")
    with page.expect_navigation():
        page.get_by_role("button", name="Effacer").click()


def _synthese_in_progress(page: Any, live: Live, agent: LiveAgent) -> None:
    page.goto(f"{live.url}/app/brouillons/{synthese_job(live, agent, done=5, total=9)}")


def _second_page(page: Any, live: Live, agent: LiveAgent) -> None:
    courriers(live, agent, 40)
    page.goto(f"{live.url}/app")
    page.get_by_role("link", name="Suivants").click()
    page.get_by_text("Page 2").wait_for()


PAGES: list[Stop] = [
    Stop("Connexion", "/app", signed_in=False),
    *(Stop(f"Formulaire : {form.label}", f"/app/rediger/{form.slug}") for form in forms.FORMS),
    Stop("Formulaire rempli (exemple de délibération)", "/app/rediger/deliberation?exemple=1"),
    Stop("Formulaire avec erreurs", _form_with_errors),
    Stop("Brouillon d'arrêté (avertissements, [À COMPLÉTER])", _arrete),
    Stop("Confirmation d'effacement", _erasure),
    Stop("Synthèse en cours (barre d'avancement)", _synthese_in_progress),
    Stop("Accueil : Mes brouillons", "/app"),
    Stop("Accueil : page 2 (Précédents, Suivants)", _second_page),
    Stop("Erreur 404", f"/app/brouillons/{uuid.UUID(int=0)}"),
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
    page: Any, live: Live, live_agent: LiveAgent
) -> None:
    axe = Axe()
    # The audit itself can see: a page with an image without text and no language fails it.
    page.set_content('<html><body><img src="/plume.png"><p>Texte</p></body></html>')
    found = {
        v["id"]: v["impact"] for v in axe.run(page, options=AXE_OPTIONS).response["violations"]
    }
    assert found["image-alt"] == "critical"
    assert found["html-has-lang"] == "serious"
    signed_in = False
    summary: list[tuple[str, Counter[str], list[str]]] = []
    for stop in PAGES:
        if stop.signed_in and not signed_in:
            sign_in(page, live, live_agent.email)
            signed_in = True
        elif not stop.signed_in and signed_in:
            page.context.clear_cookies()
            signed_in = False
        if isinstance(stop.visit, str):
            page.goto(f"{live.url}{stop.visit}")
        else:
            stop.visit(page, live, live_agent)
        violations = axe.run(page, options=AXE_OPTIONS).response["violations"]
        counts = Counter(str(v["impact"]) for v in violations)
        rules = [f"{v['id']} ({v['impact']}, {len(v['nodes'])})" for v in violations]
        summary.append((stop.name, counts, rules))
        print(f"axe — {stop.name}: " + (", ".join(rules) or "aucune violation"))
    if UPDATE_DOCS:
        write_summary(summary)
    blocking = [
        (name, rules) for name, counts, rules in summary if any(counts[i] for i in BLOCKING)
    ]
    assert blocking == []


def write_summary(summary: list[tuple[str, Counter[str], list[str]]]) -> None:
    """The table of docs/workspace.md's axe section, rewritten by each run."""
    lines = [
        START,
        "| page | critique | grave | modérée | mineure | règles en défaut |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, counts, rules in summary:
        cells = " | ".join(str(counts[impact]) for impact in IMPACTS)
        lines.append(f"| {name} | {cells} | {', '.join(rules) or '—'} |")
    lines.append(END)
    doc = DOCS / "workspace.md"
    text = doc.read_text(encoding="utf-8")
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.S)
    assert pattern.search(text), "docs/workspace.md has no axe section to fill"
    doc.write_text(pattern.sub(lambda _: "\n".join(lines), text), encoding="utf-8")
