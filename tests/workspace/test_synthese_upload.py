"""A synthèse from a joined file (PDF, DOCX, ODT, TXT): its text extracted on the server and
sent through the API's own synthèse; every unreadable file refused in French next to the field
« Fichier à synthétiser » (422), never a 500; and a long synthèse's progress bar."""

from __future__ import annotations

import io
import random
import uuid

import pytest
from httpx import AsyncClient, Response
from pypdf import PdfReader, PdfWriter
from sqlalchemy.ext.asyncio import AsyncSession

from plume.errors import InvalidRequest
from plume.models import Draft, DraftStatus
from plume.workspace import uploads
from tests.identity.provider import MockProvider
from tests.support.factories import Factory
from tests.workspace.documents import docx_file, odt_file, pdf
from tests.workspace.helpers import csrf_field, draft_id_of, signed_in_agent, text_of

REPORT = [
    "Compte rendu du conseil municipal du 12 mars 2027.",
    "Le conseil a examiné la rénovation de l'école Jules-Ferry, estimée à 480 000 euros.",
    "Les travaux commenceront en juillet pour s'achever avant la rentrée de septembre.",
]


async def post_file(browser: AsyncClient, name: str, content: bytes, **fields: str) -> Response:
    return await browser.post(
        "/app/rediger/synthese",
        data={"format": "resume", **fields, **csrf_field(browser)},
        files={"fichier": (name, content, "application/octet-stream")},
    )


def field_error(response: Response) -> str:
    html = text_of(response.text)
    start = html.index('id="champ-fichier-erreur">') + len('id="champ-fichier-erreur">')
    return html[start : html.index("</p>", start)]


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("compte-rendu.pdf", pdf([REPORT[:2], REPORT[2:]])),
        ("compte-rendu.docx", docx_file(REPORT)),
        ("compte-rendu.odt", odt_file(REPORT)),
        ("compte-rendu.txt", "\n\n".join(REPORT).encode()),
    ],
)
async def test_a_joined_file_is_the_synthèses_source(
    browser: AsyncClient,
    provider: MockProvider,
    factory: Factory,
    db: AsyncSession,
    name: str,
    content: bytes,
) -> None:
    await signed_in_agent(browser, provider, factory, db)
    draft_id = draft_id_of(await post_file(browser, name, content))
    draft = await db.get(Draft, uuid.UUID(draft_id))
    assert draft is not None
    source = draft.request["source_text"]
    for sentence in REPORT:
        assert sentence in source, (name, source)
    page = await browser.get(f"/app/brouillons/{draft_id}")
    assert page.status_code == 200
    assert (await browser.get(f"/v1/drafts/{draft_id}")).json()["kind"] == "synthese"


async def test_the_form_asks_for_a_file_of_the_accepted_kinds(
    browser: AsyncClient, provider: MockProvider, factory: Factory, db: AsyncSession
) -> None:
    await signed_in_agent(browser, provider, factory, db)
    html = text_of((await browser.get("/app/rediger/synthese")).text)
    assert 'enctype="multipart/form-data"' in html
    assert '<label for="champ-fichier">Fichier à synthétiser</label>' in html
    assert 'type="file" accept=".pdf,.odt,.docx,.txt"' in html


@pytest.mark.parametrize(
    ("name", "content", "said"),
    [
        ("scan.pdf", pdf([[], []]), "ne contient pas de texte lisible"),
        ("photo.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "Format non pris en charge"),
        ("faux.pdf", b"Ceci n'est pas un PDF.", "n'est pas un PDF"),
        ("tronque.pdf", pdf([REPORT])[:200], "illisible ou endommagé"),
        ("faux.docx", b"PK\x03\x04 pas une archive", "n'est pas un document DOCX lisible"),
        ("faux.odt", docx_file(REPORT), "n'est pas un document ODT lisible"),
        ("vide.txt", b"", "Le fichier est vide."),
        ("gros.txt", b"a" * (uploads.MAX_BYTES + 1), "Le fichier dépasse 10 Mo."),
    ],
)
async def test_an_unreadable_file_is_refused_next_to_its_field(
    browser: AsyncClient,
    provider: MockProvider,
    factory: Factory,
    db: AsyncSession,
    name: str,
    content: bytes,
    said: str,
) -> None:
    await signed_in_agent(browser, provider, factory, db)
    response = await post_file(browser, name, content)
    assert response.status_code == 422, response.text[:300]
    assert said in field_error(response)
    html = text_of(response.text)
    assert '<a href="#champ-fichier">Fichier à synthétiser : ' in html
    assert 'aria-invalid="true"' in html
    assert "Aucun brouillon" in (await browser.get("/app")).text


def encrypted(content: bytes) -> bytes:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(content)))
    writer.encrypt("secret")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


async def test_the_limits_of_a_file_are_said_in_french(
    browser: AsyncClient,
    provider: MockProvider,
    factory: Factory,
    db: AsyncSession,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A PDF with a password, more pages than the cap, an archive that would unpack too far
    (the caps lowered for the test: the real ones are 2,000 pages and 200 MB)."""
    await signed_in_agent(browser, provider, factory, db)
    locked = await post_file(browser, "cr.pdf", encrypted(pdf([REPORT])))
    assert locked.status_code == 422
    assert "protégé par un mot de passe" in field_error(locked)
    monkeypatch.setattr(uploads, "MAX_PAGES", 2)
    long = await post_file(browser, "cr.pdf", pdf([REPORT, REPORT, REPORT]))
    assert long.status_code == 422
    assert field_error(long) == "Ce PDF a plus de 2 pages : joignez-le en plusieurs fois."
    monkeypatch.setattr(uploads, "MAX_UNPACKED_BYTES", 10_000)
    bomb = await post_file(browser, "cr.docx", docx_file(REPORT))
    assert bomb.status_code == 422
    assert field_error(bomb) == "Ce fichier DOCX est trop volumineux une fois décompressé."


async def test_a_nul_character_in_the_forms_text_is_refused_not_stored(
    browser: AsyncClient, provider: MockProvider, factory: Factory, db: AsyncSession
) -> None:
    """The multipart body of this form may hold NUL bytes (a file's); its text fields may
    not (PostgreSQL's text cannot hold them)."""
    await signed_in_agent(browser, provider, factory, db)
    response = await browser.post(
        "/app/rediger/synthese",
        data={"source_text": "Compte rendu\x00 du conseil.", **csrf_field(browser)},
        files={"autre": ("", b"", "application/octet-stream")},
    )
    assert response.status_code == 422
    assert 'id="champ-source-text-erreur">Ce champ contient un caractère nul' in response.text
    # A file's own NUL bytes are no trouble: they are not its text.
    text = "\n\n".join(REPORT).encode()
    assert (await post_file(browser, "cr.txt", text + b"\x00")).status_code == 303


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("cr.pdf", pdf([REPORT, REPORT])),
        ("cr.docx", docx_file(REPORT)),
        ("cr.odt", odt_file(REPORT)),
    ],
)
def test_damaged_files_are_refused_never_a_crash(name: str, content: bytes) -> None:
    """Bytes changed at random here and there, some files cut short (a fixed seed, so that
    a failure can be replayed): each one is read or refused with a French sentence naming
    the field, never another exception (which would be a 500)."""
    rng = random.Random(2027)
    fields: list[str] = []
    for _ in range(200):
        damaged = bytearray(content)
        for _ in range(rng.randint(1, 20)):
            damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        if rng.random() < 0.3:
            damaged = damaged[: rng.randrange(len(damaged))]
        try:
            uploads.extract_text(name, bytes(damaged))
        except InvalidRequest as error:
            fields += [e.field for e in error.errors or []] or ["(aucun champ)"]
    assert set(fields) == {"fichier"}
    assert len(fields) > 20  # the damage was real


async def test_a_text_and_a_file_or_neither_are_refused(
    browser: AsyncClient, provider: MockProvider, factory: Factory, db: AsyncSession
) -> None:
    await signed_in_agent(browser, provider, factory, db)
    both = await post_file(browser, "cr.txt", b"Un texte.", source_text="Un autre texte.")
    assert both.status_code == 422
    assert field_error(both) == "Collez un texte ou joignez un fichier, pas les deux."
    neither = await browser.post(
        "/app/rediger/synthese", data={"source_text": " ", **csrf_field(browser)}
    )
    assert neither.status_code == 422
    assert 'id="champ-source-text-erreur">Collez un texte ou joignez un fichier.' in text_of(
        neither.text
    )


async def test_a_multipart_form_needs_its_csrf_token_too(
    browser: AsyncClient, provider: MockProvider, factory: Factory, db: AsyncSession
) -> None:
    await signed_in_agent(browser, provider, factory, db)
    forged = await browser.post(
        "/app/rediger/synthese",
        data={"format": "resume"},
        files={"fichier": ("cr.txt", b"Un texte.", "text/plain")},
    )
    assert forged.status_code == 403
    assert "Aucun brouillon" in (await browser.get("/app")).text


async def test_a_synthèse_being_written_shows_its_progress(
    browser: AsyncClient, provider: MockProvider, factory: Factory, db: AsyncSession
) -> None:
    """The job's progress as its worker records it: a <progress> bar, « Partie 3 sur 12 »
    said to screen readers, and the JSON that plume.js polls; nothing for another commune."""
    who = await signed_in_agent(browser, provider, factory, db)
    job = Draft(
        organization_id=who.commune.id,
        created_by_agent_id=who.agent.id,
        kind="synthese",
        status=DraftStatus.PROCESSING,
        title="Synthèse en cours",
        request={"kind": "synthese", "source_text": "…"},
        ai_notice="Document rédigé avec l'aide d'une IA.",
        progress={"done": 3, "total": 12},
    )
    db.add(job)
    await db.flush()
    page = text_of((await browser.get(f"/app/brouillons/{job.id}")).text)
    assert '<progress id="barre-avancement" max="12" value="3">' in page
    assert 'role="status" aria-live="polite">Partie 3 sur 12</p>' in page
    assert f'data-avancement="/app/brouillons/{job.id}/avancement"' in page
    polled = await browser.get(f"/app/brouillons/{job.id}/avancement")
    assert polled.status_code == 200
    assert polled.json() == {"status": "processing", "done": 3, "total": 12}

    browser.cookies.clear()
    await signed_in_agent(browser, provider, factory, db, name="Commune de Voisinville")
    foreign = await browser.get(f"/app/brouillons/{job.id}/avancement")
    assert foreign.status_code == 404
    assert "Plumeville" not in foreign.text
