"""A running Plume for the browser tests: uvicorn with real commits and the lifespan on (the
synthèse worker runs), the test OpenID provider, Debian's Chromium driven by Playwright, a
commune and its secretary committed for the server to see, and signing in as a person does."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
from pydantic import SecretStr

from plume.app import create_app
from plume.dates import SystemClock
from plume.db import create_engine, create_session_factory
from plume.models import Draft, DraftStatus
from plume.quotas.schemas import QuotaIn
from plume.quotas.service import QuotaService
from tests.identity.helpers import fresh_email, invited, person
from tests.identity.provider import MockProvider
from tests.support.factories import Factory
from tests.support.servers import free_port, serve_in_thread
from tests.support.settings import TEST_SECRET, make_settings
from tests.support.tools import require_tool

playwright_api = pytest.importorskip("playwright.sync_api")

DOCS = Path(__file__).resolve().parents[2] / "docs"
# The screenshots and the axe table go into docs/ with PLUME_UPDATE_DOCS=1 (`make
# screenshots`); otherwise a run leaves the working tree as it was.
UPDATE_DOCS = os.environ.get("PLUME_UPDATE_DOCS") == "1"
IMAGES = DOCS / "images" if UPDATE_DOCS else Path(tempfile.gettempdir()) / "plume-screenshots"


@dataclass(frozen=True)
class Live:
    url: str
    provider: MockProvider
    database_url: str


@dataclass(frozen=True)
class LiveAgent:
    email: str
    commune_id: uuid.UUID
    agent_id: uuid.UUID


@dataclass(frozen=True)
class Epci:
    """An EPCI's admin, an admin of its first commune, an administrator of the operator's
    organisation (decision 0011: acts as operator_admin) and the EPCI's two communes."""

    admin_email: str
    commune_admin_email: str
    operator_email: str
    communes: tuple[str, str]


@pytest.fixture(scope="module")
def chromium() -> str:
    return require_tool("chromium", "chromium-browser", what="Chromium")


@pytest.fixture(scope="module")
async def live_agent(committed_database_url: str) -> LiveAgent:
    """A commune and its invited secretary, committed for the server to see."""
    engine = create_engine(committed_database_url, pool_size=1)
    email = fresh_email()
    try:
        async with create_session_factory(engine)() as session, session.begin():
            commune = await Factory(session, TEST_SECRET).commune("Commune de Navigueville")
            agent = await invited(session, commune, email, title="Secrétaire de mairie")
    finally:
        await engine.dispose()
    return LiveAgent(email, commune.id, agent.id)


@pytest.fixture(scope="module")
async def epci(committed_database_url: str) -> Epci:
    """An EPCI with 1 000 requests a month to split, two communes, its admin, an admin of
    the first commune and an administrator of the operator's organisation, committed for
    the server to see."""
    engine = create_engine(committed_database_url, pool_size=1)
    admin_email, commune_admin_email, operator_email = fresh_email(), fresh_email(), fresh_email()
    suffix = admin_email.split("@")[0][-4:]
    names = (f"Commune d'Angiens {suffix}", f"Commune de Blosseville {suffix}")
    try:
        async with create_session_factory(engine)() as session, session.begin():
            factory = Factory(session, TEST_SECRET)
            epci = await factory.epci(f"Communauté de la Côte {suffix}")
            communes = [await factory.commune(name, parent=epci) for name in names]
            quota = QuotaIn(metric="requests", period="month", limit=1000)  # type: ignore[arg-type]
            await QuotaService(session, SystemClock()).replace(epci.id, [quota])
            await invited(session, epci, admin_email, role="tenant_admin", title="Directrice")
            await invited(
                session, communes[0], commune_admin_email, role="tenant_admin", title="Maire"
            )
            operator = await factory.operator()
            await invited(session, operator, operator_email, role="tenant_admin", title="Opérateur")
    finally:
        await engine.dispose()
    return Epci(admin_email, commune_admin_email, operator_email, names)


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
        yield Live(url, provider, committed_database_url)


@pytest.fixture
def page(chromium: str) -> Iterator[Any]:
    with playwright_api.sync_playwright() as playwright:
        # French for the browser's own words too (« Parcourir… »), with Debian's chromium-l10n;
        # LANGUAGE too, or the date fields read month/day/year (12/06/2026 for 6 December).
        browser = playwright.chromium.launch(
            executable_path=chromium,
            args=["--no-sandbox", "--lang=fr-FR"],
            env={**os.environ, "LANGUAGE": "fr"},
        )
        try:
            context = browser.new_context(
                accept_downloads=True, locale="fr-FR", viewport={"width": 1280, "height": 900}
            )
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


def follow(page: Any, link: Any) -> None:
    """Click a link and wait for the page it leads to: what is read next (a title, a count)
    is read on that page, not on the one being left."""
    with page.expect_navigation():
        link.click()


def quota_field(page: Any, commune: str) -> Any:
    """A commune's monthly requests on the EPCI's split-quota page."""
    return page.get_by_role("group", name=commune).get_by_label("Requêtes par mois")


def synthese_job(live: Live, agent: LiveAgent, done: int, total: int) -> uuid.UUID:
    """A synthèse job as its worker leaves it midway (leased for an hour, so that the live
    server's own worker leaves it alone): what the progress bar shows."""
    draft_id = uuid.uuid4()
    with _database(live) as connection:
        connection.execute(
            sqlalchemy.insert(Draft).values(
                id=draft_id,
                organization_id=agent.commune_id,
                created_by_agent_id=agent.agent_id,
                kind="synthese",
                status=DraftStatus.PROCESSING,
                title="Synthèse en cours",
                request={"kind": "synthese", "source_text": "Compte rendu."},
                ai_notice="Document rédigé avec l'aide d'une IA.",
                progress={"done": done, "total": total},
                locked_until=datetime.now(UTC) + timedelta(hours=1),
            )
        )
    return draft_id


def courriers(live: Live, agent: LiveAgent, count: int) -> None:
    """`count` letters of the commune, enough for the drafts list to have pages."""
    with _database(live) as connection:
        connection.execute(
            sqlalchemy.insert(Draft),
            [
                {
                    "organization_id": agent.commune_id,
                    "created_by_agent_id": agent.agent_id,
                    "kind": "courrier",
                    "status": DraftStatus.DRAFT,
                    "title": f"Courrier n° {number}",
                    "request": {"kind": "courrier"},
                    "text": "Madame, Monsieur,",
                    "ai_notice": "Document rédigé avec l'aide d'une IA.",
                }
                for number in range(1, count + 1)
            ],
        )


def advance_job(live: Live, draft_id: uuid.UUID, **values: Any) -> None:
    with _database(live) as connection:
        connection.execute(sqlalchemy.update(Draft).where(Draft.id == draft_id).values(**values))


def _database(live: Live) -> Any:
    """A short synchronous transaction on the live server's database (the Playwright
    tests are synchronous)."""
    return sqlalchemy.create_engine(live.database_url, poolclass=sqlalchemy.NullPool).begin()
