"""The administration's pages in a real browser (Playwright, Debian's Chromium, a running
Plume): an EPCI's admin splits its monthly allowance between two of its communes, is told
in an alert (focused) when the communes would get more than the EPCI has, and reads the
amounts back; the operator's pages open for an administrator of the operator's organisation.
The browser reports no Content-Security-Policy violation. The screenshots of
docs/workspace.md are taken here (docs/images/). Skipped without Chromium, unless
PLUME_REQUIRE_TOOLS=1 (CI)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.workspace.live import IMAGES, Epci, epci, follow, quota_field
from tests.workspace.test_browser import Live, chromium, live, page, sign_in

pytestmark = pytest.mark.slow

__all__ = ["chromium", "epci", "live", "page"]


def shoot(page: Any, name: str) -> None:
    IMAGES.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(IMAGES / f"{name}.png"), full_page=True)


def csp_violations(page: Any) -> list[str]:
    found: list[str] = []
    page.on(
        "console",
        lambda message: (
            found.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    return found


def unmarked_focus(page: Any) -> list[str]:
    """Tab through the whole page: the elements that take the focus without showing it
    (no outline), as `tag#id text`."""
    found: list[str] = []
    seen: set[str] = set()
    for _ in range(300):
        page.keyboard.press("Tab")
        focused = page.evaluate(
            """() => { const e = document.activeElement, s = getComputedStyle(e);
            return [e.tagName, e.id + '|' + e.getAttribute('name') + '|' + e.textContent.trim()
              .slice(0, 30) + '|' + e.getAttribute('href'), s.outlineStyle, s.outlineWidth]; }"""
        )
        tag, name, style, width = focused
        if tag == "BODY" or f"{tag} {name}" in seen:
            break
        seen.add(f"{tag} {name}")
        if style == "none" or width == "0px":
            found.append(f"{tag} {name}")
    assert seen, "nothing took the focus"
    return found


def test_an_epci_admin_splits_its_quota_between_two_communes(
    page: Any, live: Live, epci: Epci
) -> None:
    violations = csp_violations(page)
    first, second = epci.communes
    sign_in(page, live, epci.admin_email)
    follow(page, page.get_by_role("link", name="Administration"))
    assert page.title().startswith("Administration — Communauté de la Côte")
    follow(
        page,
        page.get_by_role("navigation", name="Administration").get_by_role("link", name="Quotas"),
    )
    assert page.title().startswith("Quotas — ")

    quota_field(page, first).fill("600")
    with page.expect_navigation():
        page.get_by_role("button", name=f"Enregistrer les quotas de {first}").click()
    assert page.get_by_role("status").filter(has_text=first).is_visible()
    assert quota_field(page, first).input_value() == "600"

    quota_field(page, second).fill("500")
    with page.expect_navigation():
        page.get_by_role("button", name=f"Enregistrer les quotas de {second}").click()
    assert page.title().startswith("Erreur — Quotas")
    alert = page.get_by_role("alert")
    assert "il reste au plus 400" in alert.inner_text()
    assert "[0]" not in alert.inner_text()  # the fields by their labels, not as JSON names
    assert page.evaluate("document.activeElement.id") == "erreurs"  # announced, focused
    assert quota_field(page, second).get_attribute("aria-invalid") == "true"
    shoot(page, "admin-quotas-refus")

    quota_field(page, second).fill("400")
    with page.expect_navigation():
        page.get_by_role("button", name=f"Enregistrer les quotas de {second}").click()
    allotted = page.locator("#allocation tbody tr").first.locator("td")
    assert allotted.nth(0).inner_text() == "1\u202f000"  # the EPCI's total
    assert allotted.nth(1).inner_text() == "1\u202f000"  # split between the two
    assert allotted.nth(2).inner_text() == "0"
    assert quota_field(page, first).input_value() == "600"
    assert quota_field(page, second).input_value() == "400"
    shoot(page, "admin-quotas")
    assert unmarked_focus(page) == []

    # Something to show on the usage page: an arrêté drafted by the EPCI's admin.
    follow(page, page.get_by_role("link", name="Mes brouillons"))
    follow(page, page.get_by_role("link", name="Arrêté", exact=True))
    follow(page, page.get_by_role("link", name="Exemple"))
    page.get_by_role("button", name="Rédiger").click()
    page.wait_for_url(f"{live.url}/app/brouillons/*")
    follow(page, page.get_by_role("link", name="Administration"))
    for section, name in (
        ("Agents", "admin-agents"),
        ("Consommation", "admin-consommation"),
        ("Journal d’audit", "admin-journal"),
    ):
        nav = page.get_by_role("navigation", name="Administration")
        follow(page, nav.get_by_role("link", name=section))
        if section == "Journal d’audit":
            with page.expect_navigation():
                page.get_by_role("button", name="Vérifier la chaîne").click()
            assert "Chaîne intègre" in page.locator("#resultat-verification").inner_text()
        if section == "Consommation":
            assert page.locator("svg[role=img]").count() == 2  # by month, by kind
            # Twelve months (the gaps at zero), one kind of document.
            assert page.locator("svg[role=img] rect").count() == 13
        shoot(page, name)
    assert violations == []


def test_the_keyboard_reaches_the_split_and_the_operator_sees_every_tenant(
    page: Any, live: Live, epci: Epci
) -> None:
    violations = csp_violations(page)
    sign_in(page, live, epci.admin_email)
    page.goto(f"{live.url}/app/administration/quotas")
    field = quota_field(page, epci.communes[0])
    for _ in range(80):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == field.get_attribute("id"):
            break
    else:
        pytest.fail("The commune's quota field is not reachable with the Tab key")
    assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") != "none"
    assert page.goto(f"{live.url}/app/operateur").status == 403

    page.context.clear_cookies()
    sign_in(page, live, epci.operator_email)
    follow(page, page.get_by_role("link", name="Opérateur"))
    assert page.title() == "Opérateur : organisations — Plume"
    assert page.get_by_role("link", name=epci.communes[0]).is_visible()
    shoot(page, "operateur-organisations")
    follow(page, page.get_by_role("link", name=epci.communes[0]))
    assert page.get_by_role("heading", name="Politique").is_visible()
    assert page.get_by_role("group", name="Hébergements permis").get_by_label("France").count()
    shoot(page, "operateur-organisation")
    assert unmarked_focus(page) == []  # every link, button, field and box shows its focus
    follow(page, page.get_by_role("link", name="Quotas par défaut"))
    assert page.get_by_role("heading", name="Chaque nouvelle commune").is_visible()
    shoot(page, "operateur-quotas-par-defaut")
    follow(page, page.get_by_role("link", name="Quotas et consommation"))
    assert page.locator("#quotas-du-mois").is_visible()
    assert page.locator("svg[role=img]").count() + page.locator("figure.graphe p").count() == 2
    shoot(page, "operateur-consommation")
    assert violations == []
