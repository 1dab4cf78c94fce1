"""The workspace in a real browser: Playwright driving the system's Chromium (Debian's
`chromium`, never a downloaded one) against a running Plume (uvicorn, real commits) and the
test OpenID provider. A secretary signs in, drafts an arrêté from the example, reads its
warnings, corrects it, approves it and downloads it (opened with python-docx); a synthèse
from a PDF; a synthèse job's progress bar following the job; the keyboard alone reaches
« Rédiger »; the browser reports no Content-Security-Policy violation. The main pages'
screenshots land in docs/images/ (docs/workspace.md shows them). Skipped without Chromium,
unless PLUME_REQUIRE_TOOLS=1 (CI)."""

from __future__ import annotations

import re
from typing import Any

import docx
import pytest

from tests.workspace.documents import pdf
from tests.workspace.live import (
    IMAGES,
    Live,
    LiveAgent,
    advance_job,
    chromium,
    follow,
    live,
    live_agent,
    page,
    sign_in,
    synthese_job,
)

__all__ = ["chromium", "live", "live_agent", "page"]

pytestmark = pytest.mark.slow


def shoot(page: Any, name: str) -> None:
    """A screenshot for the documentation, the whole page at 1280 px wide."""
    IMAGES.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=IMAGES / f"workspace-{name}.png", full_page=True)


def watch_csp(page: Any) -> list[str]:
    violations: list[str] = []
    page.on(
        "console",
        lambda message: (
            violations.append(message.text)
            if "Content Security Policy" in message.text
            or "Content-Security-Policy" in message.text
            else None
        ),
    )
    return violations


def test_a_secretary_drafts_corrects_approves_and_downloads_an_arrete(
    page: Any, live: Live, live_agent: LiveAgent
) -> None:
    violations = watch_csp(page)
    sign_in(page, live, live_agent.email)
    assert page.title() == "Mes brouillons — Plume"
    follow(page, page.get_by_role("link", name="Arrêté", exact=True))
    assert page.title() == "Rédiger : Arrêté — Plume"
    follow(page, page.get_by_role("link", name="Exemple"))
    assert page.get_by_label("Objet").input_value().startswith("Réglementation temporaire")
    shoot(page, "formulaire-arrete")
    page.get_by_role("button", name="Rédiger").click()
    page.wait_for_url(f"{live.url}/app/brouillons/*")
    assert page.get_by_role("heading", name="Points à vérifier", exact=False).is_visible()
    assert page.locator(".avertissements li").count() >= 1
    assert page.locator(".document mark").count() >= 1  # the [À COMPLÉTER] places
    shoot(page, "brouillon")

    # The correction: the number from the registre, then the dates of publication and of
    # signature, saved before review.
    text = page.get_by_label("Texte du document")
    corrected = (
        text.input_value()
        .replace("n° [À COMPLÉTER]", "n° 2027-012")
        .replace("[À COMPLÉTER]", "2 mai 2027")
    )
    text.fill(corrected)
    with page.expect_navigation():
        page.get_by_role("button", name="Enregistrer").click()
    assert page.locator(".document mark").count() == 0
    assert page.get_by_label("Texte du document").input_value() == corrected

    with page.expect_navigation():
        page.get_by_role("button", name="Approuver").click()
    assert page.get_by_text("Approuvé par Camille Martin").is_visible()

    with page.expect_download() as download_info:
        page.get_by_role("link", name="Télécharger (.docx)").click()
    download = download_info.value
    assert download.suggested_filename.endswith(".docx")
    document = docx.Document(download.path())
    written = "\n".join(paragraph.text for paragraph in document.paragraphs)
    assert "Article 1er" in written or "Article 1" in written
    assert "[À COMPLÉTER]" not in written
    assert "2027-012" in written

    follow(page, page.get_by_role("link", name="Mes brouillons").first)
    shoot(page, "accueil")
    assert violations == []


def test_a_synthese_from_a_pdf_and_a_jobs_progress_bar(
    page: Any, live: Live, live_agent: LiveAgent
) -> None:
    violations = watch_csp(page)
    sign_in(page, live, live_agent.email)
    page.goto(f"{live.url}/app/rediger/synthese")
    # Over 10 MB: said at once by the script, nothing sent.
    field = page.get_by_label("Fichier à synthétiser")
    field.set_input_files(
        {"name": "gros.txt", "mimeType": "text/plain", "buffer": b"a" * (10 * 1024 * 1024 + 1)}
    )
    page.get_by_role("button", name="Rédiger").click()
    assert field.evaluate("input => input.validationMessage") == "Le fichier dépasse 10 Mo."
    assert page.url == f"{live.url}/app/rediger/synthese"
    report = pdf([["Compte rendu du conseil municipal.", "La cantine sera rénovée en 2027."]])
    page.get_by_label("Fichier à synthétiser").set_input_files(
        {"name": "compte-rendu.pdf", "mimeType": "application/pdf", "buffer": report}
    )
    page.get_by_label("Forme").select_option("points_cles")
    shoot(page, "formulaire-synthese")
    page.get_by_role("button", name="Rédiger").click()
    page.wait_for_url(f"{live.url}/app/brouillons/*")
    assert page.title().startswith("Synthèse : ")

    job = synthese_job(live, live_agent, done=3, total=12)
    page.goto(f"{live.url}/app/brouillons/{job}")
    bar = page.get_by_role("progressbar", name="Avancement de la synthèse")
    assert bar.get_attribute("value") == "3"
    assert page.get_by_role("status").filter(has_text="Partie 3 sur 12").is_visible()
    shoot(page, "synthese-en-cours")
    # The worker records its progress: the bar follows without a reload...
    advance_job(live, job, progress={"done": 7, "total": 12})
    page.get_by_text("Partie 7 sur 12").wait_for(timeout=10_000)
    assert bar.get_attribute("value") == "7"
    # ...and the page shows the draft once the job has ended.
    advance_job(live, job, status="draft", title="Synthèse du compte rendu", text="Résumé.")
    page.get_by_role("heading", name="Synthèse du compte rendu").wait_for(timeout=10_000)
    assert violations == []


def test_the_keyboard_alone_reaches_redige(page: Any, live: Live, live_agent: LiveAgent) -> None:
    sign_in(page, live, live_agent.email)
    page.goto(f"{live.url}/app/rediger/courrier")
    page.keyboard.press("Tab")
    focused = page.evaluate("document.activeElement.textContent")
    assert focused == "Aller au contenu"  # the skip link comes first
    for _ in range(60):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent") == "Rédiger":
            break
    else:
        pytest.fail("« Rédiger » is not reachable with the Tab key")
    style = page.evaluate(
        "(() => { const s = getComputedStyle(document.activeElement);"
        " return [s.outlineStyle, s.outlineWidth, s.outlineColor]; })()"
    )
    assert style[0] != "none"  # the focus is visible
    assert float(re.sub("px$", "", style[1])) >= 2
    with page.expect_navigation():
        page.keyboard.press("Enter")  # an empty form: errors, announced, focused
    assert page.title().startswith("Erreur — ")
    assert page.evaluate("document.activeElement.id") == "erreurs"
