"""The workspace in a real browser: Playwright driving the system's Chromium (Debian's
`chromium`, never a downloaded one) against a running Plume (uvicorn, real commits) and the
test OpenID provider. A secretary signs in, drafts an arrêté from the example, reads its
warnings, approves it and downloads it; the keyboard alone reaches « Rédiger »; the browser
reports no Content-Security-Policy violation. Skipped without Chromium, unless
PLUME_REQUIRE_TOOLS=1 (CI)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from pydantic import SecretStr

from plume.app import create_app
from plume.db import create_engine, create_session_factory
from tests.identity.helpers import fresh_email, invited, person
from tests.identity.provider import MockProvider
from tests.support.factories import Factory
from tests.support.servers import free_port, serve_in_thread
from tests.support.settings import TEST_SECRET, make_settings
from tests.support.tools import require_tool

pytestmark = pytest.mark.slow

playwright_api = pytest.importorskip("playwright.sync_api")


@dataclass(frozen=True)
class Live:
    url: str
    provider: MockProvider


@pytest.fixture(scope="module")
def chromium() -> str:
    return require_tool("chromium", "chromium-browser", what="Chromium")


@pytest.fixture(scope="module")
async def live_email(committed_database_url: str) -> str:
    """A commune and its invited secretary, committed for the server to see."""
    engine = create_engine(committed_database_url, pool_size=1)
    email = fresh_email()
    try:
        async with create_session_factory(engine)() as session, session.begin():
            commune = await Factory(session, TEST_SECRET).commune("Commune de Navigueville")
            await invited(session, commune, email, title="Secrétaire de mairie")
    finally:
        await engine.dispose()
    return email


@pytest.fixture(scope="module")
def live(committed_database_url: str, provider: MockProvider) -> Iterator[Live]:
    """A running Plume (its own engine, lifespan on) signing agents in with the provider."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    settings = make_settings(
        committed_database_url,
        public_url=url,
        oidc_issuer=provider.issuer,
        oidc_client_id="plume-test",
        oidc_client_secret=SecretStr("plume-test-client-secret"),
        oidc_scopes="openid email profile given_name usual_name siret",
    )
    with serve_in_thread(create_app(settings), port, lifespan="on"):
        yield Live(url, provider)


@pytest.fixture
def page(chromium: str) -> Iterator[Any]:
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            context = browser.new_context(accept_downloads=True, locale="fr-FR")
            yield context.new_page()
        finally:
            browser.close()


def sign_in(page: Any, live: Live, email: str) -> None:
    subject = f"sub-{uuid.uuid5(uuid.NAMESPACE_URL, email).hex}"  # the same person each time
    live.provider.set_user(subject, person(email))
    page.goto(f"{live.url}/app")
    page.get_by_role("link", name="S’identifier avec ProConnect").click()
    # The test provider's consent form: the subject to sign in as.
    page.locator('input[name="sub"]').fill(subject)
    page.locator('input[name="sub"]').press("Enter")
    page.wait_for_url(f"{live.url}/app")


def test_a_secretary_drafts_reviews_and_downloads_an_arrete(
    page: Any, live: Live, live_email: str
) -> None:
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
    sign_in(page, live, live_email)
    assert page.title() == "Mes brouillons — Plume"
    page.get_by_role("link", name="Arrêté", exact=True).click()
    assert page.title() == "Rédiger : Arrêté — Plume"
    page.get_by_role("link", name="Exemple").click()
    assert page.get_by_label("Objet").input_value().startswith("Réglementation temporaire")
    page.get_by_role("button", name="Rédiger").click()
    page.wait_for_url(f"{live.url}/app/brouillons/*")
    assert page.get_by_role("heading", name="Points à vérifier", exact=False).is_visible()
    assert page.locator(".avertissements li").count() >= 1

    with page.expect_navigation():
        page.get_by_role("button", name="Approuver").click()
    assert page.get_by_text("Approuvé par Camille Martin").is_visible()

    with page.expect_download() as download_info:
        page.get_by_role("link", name="Télécharger (.docx)").click()
    download = download_info.value
    assert download.suggested_filename.endswith(".docx")
    with open(download.path(), "rb") as file:
        assert file.read(2) == b"PK"
    assert violations == []


def test_the_keyboard_alone_reaches_redige(page: Any, live: Live, live_email: str) -> None:
    sign_in(page, live, live_email)
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
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"  # the focus is visible
    with page.expect_navigation():
        page.keyboard.press("Enter")  # an empty form: errors, announced, focused
    assert page.title().startswith("Erreur — ")
    assert page.evaluate("document.activeElement.id") == "erreurs"
