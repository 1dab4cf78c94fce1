"""Exports of a draft to md, docx and odt, parsed back to check the text and the AI notice."""

from __future__ import annotations

import dataclasses
import io
import subprocess
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import docx
import pytest
from docx.oxml import parse_xml
from odf import dc, meta, teletype  # type: ignore[import-untyped, unused-ignore]
from odf import text as odf_text  # type: ignore[import-untyped, unused-ignore]
from odf.opendocument import load  # type: ignore[import-untyped, unused-ignore]

from plume.drafting.document import AI_NOTICE, ActeNature, Article, Sections
from plume.drafting.export import (
    ExportableDraft,
    ExportFormat,
    export,
    format_french_date,
    to_docx,
    to_markdown,
    to_odt,
)
from tests.support.tools import require_tool

FORMATS: tuple[ExportFormat, ...] = ("md", "docx", "odt")

ARRETE_TEXT = """\
# Commune de Saint-Étienne-du-Rouvray

## Arrêté n° 2026-042 portant interdiction temporaire de stationner rue de l'Église

Le maire de Saint-Étienne-du-Rouvray,

Vu le code général des collectivités territoriales, notamment ses articles L. 2212-1, \
L. 2212-2 et L. 2213-1 ;
Vu le code de la route ;

Considérant que des travaux de réfection de la chaussée auront lieu du 1er au 5 décembre 2026 ;
Considérant qu'il convient d'assurer la sécurité des usagers et des ouvriers ;

**ARRÊTE :**

**Article 1er** : Le stationnement est interdit rue de l'Église, côté pair, du 1er au 5 décembre.

Article 2 – La signalisation réglementaire sera mise en place par les services techniques :
- panneaux B6a1 à chaque extrémité ;
- *information* des riverains par voie d'affichage.

### Article 3

Le directeur général des services est chargé de l'exécution du présent arrêté.

Article 4

Ampliation sera adressée au commandant de la brigade de gendarmerie.

Le présent arrêté peut faire l'objet d'un recours devant le tribunal administratif de Rouen \
dans un délai de deux mois à compter de sa publication.

Fait à Saint-Étienne-du-Rouvray, le 27 novembre 2026.
"""

ARRETE_TITLE = "Arrêté portant interdiction temporaire de stationner rue de l'Église"

COURRIER_TEXT = """\
Mairie de Bois-Guillaume
Madame Hélène Lefèvre
12, rue des Tilleuls

Objet : Réponse à votre demande d'élagage

Madame,

Nous avons bien reçu votre courrier relatif à l'élagage des arbres du chemin communal.
Les services techniques interviendront avant la fin de l'année.

Je vous prie d'agréer, Madame, l'expression de mes salutations distinguées.
"""


def _arrete(**changes: Any) -> ExportableDraft:
    draft = ExportableDraft(
        id="0b5e7a6c-8d1e-4f6b-9a0c-3e2d1f4a5b6c",
        kind="arrete",
        title=ARRETE_TITLE,
        text=ARRETE_TEXT,
        sections=Sections(
            title=ARRETE_TITLE,
            visas=["Vu le code de la route ;"],
            considerants=["Considérant que des travaux auront lieu ;"],
            articles=[Article(number="1er", text="Le stationnement est interdit.")],
        ),
        ai_notice=AI_NOTICE,
        status="draft",
        commune_name="Saint-Étienne-du-Rouvray",
        created_at=datetime(2026, 11, 26, 9, 30, tzinfo=UTC),
        acte_nature=ActeNature(code="6.1", label="Police municipale"),
    )
    return dataclasses.replace(draft, **changes)


def _approved(draft: ExportableDraft) -> ExportableDraft:
    # 23:30 UTC on the 26th is already the 27th in Paris.
    return dataclasses.replace(
        draft,
        status="approved",
        reviewer_name="Marie Dupont",
        reviewer_title="secrétaire générale de mairie",
        reviewed_at=datetime(2026, 11, 26, 23, 30, tzinfo=UTC),
    )


def _courrier(**changes: Any) -> ExportableDraft:
    draft = ExportableDraft(
        id="5f0c2b1a-0000-4000-8000-000000000001",
        kind="courrier",
        title="Réponse à votre demande d'élagage",
        text=COURRIER_TEXT,
        sections=None,
        ai_notice=AI_NOTICE,
        status="draft",
        commune_name="Bois-Guillaume",
        created_at=datetime(2026, 11, 26, 9, 30, tzinfo=UTC),
    )
    return dataclasses.replace(draft, **changes)


def _docx_paragraphs(data: bytes) -> list[str]:
    return [p.text for p in docx.Document(io.BytesIO(data)).paragraphs]


def _odt_body(data: bytes) -> list[str]:
    document = load(io.BytesIO(data))
    elements = [
        *document.text.getElementsByType(odf_text.H),
        *document.text.getElementsByType(odf_text.P),
    ]
    return [str(teletype.extractText(e)) for e in elements]


def _visible_text(data: bytes, format: ExportFormat) -> str:
    if format == "md":
        return data.decode("utf-8")
    if format == "docx":
        return "\n".join(_docx_paragraphs(data))
    return "\n".join(_odt_body(data))


def _odt_meta(data: bytes) -> tuple[dict[str, list[str]], dict[str, tuple[str, str]]]:
    """Dublin Core and keywords by element name, and user-defined fields: name → (type, value)."""
    document = load(io.BytesIO(data))
    fields: dict[str, list[str]] = {}
    for name, element_type in (
        ("title", dc.Title),
        ("description", dc.Description),
        ("subject", dc.Subject),
        ("keyword", meta.Keyword),
        ("initial-creator", meta.InitialCreator),
    ):
        fields[name] = [
            str(teletype.extractText(e)) for e in document.meta.getElementsByType(element_type)
        ]
    user_defined = {
        str(e.getAttribute("name")): (
            str(e.getAttribute("valuetype")),
            str(teletype.extractText(e)),
        )
        for e in document.meta.getElementsByType(meta.UserDefined)
    }
    return fields, user_defined


# --- Markdown ---------------------------------------------------------------------------------


def test_markdown_opens_with_the_notice_then_the_text() -> None:
    data = to_markdown(_arrete())
    text = data.decode("utf-8")

    notice_block, _, body = text.partition("\n---\n")
    assert AI_NOTICE in notice_block.replace("\\", "")
    assert "Projet non encore validé" in notice_block
    assert body.strip() == ARRETE_TEXT.strip()
    assert "Considérant qu'il convient" in text


def test_markdown_of_an_approved_draft_names_the_reviewer_in_french() -> None:
    text = to_markdown(_approved(_arrete())).decode("utf-8")

    assert "Validé par Marie Dupont, secrétaire générale de mairie, le 27 novembre 2026." in text
    assert text.index("Validé par") < text.index("Commune de Saint-Étienne-du-Rouvray")


# --- Word -------------------------------------------------------------------------------------


def test_docx_of_an_arrete_carries_text_notice_and_metadata() -> None:
    data = to_docx(_arrete())
    document = docx.Document(io.BytesIO(data))
    paragraphs = document.paragraphs

    assert AI_NOTICE in paragraphs[0].text
    assert all(run.italic for run in paragraphs[0].runs)
    texts = [p.text for p in paragraphs]
    assert any(ARRETE_TITLE.replace("Arrêté", "Arrêté n° 2026-042") in t for t in texts)
    assert "Vu le code de la route ;" in texts
    assert "Considérant qu'il convient d'assurer la sécurité des usagers et des ouvriers ;" in texts

    article = next(p for p in paragraphs if p.text.startswith("Article 1er"))
    assert article.runs[0].bold
    assert article.runs[0].text.startswith("Article 1er")
    assert "Le stationnement est interdit rue de l'Église" in article.text
    # Not bolded in the Markdown, the number of article 2 still stands out.
    article_2 = next(p for p in paragraphs if p.text.startswith("Article 2"))
    assert article_2.runs[0].bold
    assert article_2.runs[0].text.startswith("Article 2")

    styles = {p.text: p.style.name if p.style is not None else None for p in paragraphs}
    assert styles["Commune de Saint-Étienne-du-Rouvray"] == "Heading 1"
    assert styles["Article 3"] == "Heading 3"
    assert styles["panneaux B6a1 à chaque extrémité ;"] == "List Bullet"
    assert styles["information des riverains par voie d'affichage."] == "List Bullet"
    article_4 = next(p for p in paragraphs if p.text.startswith("Article 4"))
    assert article_4.text == "Article 4"
    assert all(run.bold for run in article_4.runs)
    arrete = next(p for p in paragraphs if p.text == "ARRÊTE :")
    assert all(run.bold for run in arrete.runs)

    footer = "\n".join(p.text for p in document.sections[0].footer.paragraphs)
    assert AI_NOTICE in footer

    properties = document.core_properties
    assert properties.title == ARRETE_TITLE
    assert properties.comments == AI_NOTICE
    assert "IA" in properties.keywords
    assert "Plume" in properties.keywords
    assert "6.1 Police municipale" in properties.subject
    assert properties.author == "Plume — Saint-Étienne-du-Rouvray"
    assert properties.category == "arrete"
    assert properties.language == "fr-FR"
    assert properties.created == datetime(2026, 11, 26, 9, 30, tzinfo=UTC)


def test_docx_custom_properties_mark_the_document_as_ai_assisted() -> None:
    with zipfile.ZipFile(io.BytesIO(to_docx(_approved(_arrete())))) as archive:
        root = parse_xml(archive.read("docProps/custom.xml"))
    values = {p.get("name"): "".join(p.itertext()) for p in root}

    assert values["ai_assisted"] == "true"
    assert values["ai_notice"] == AI_NOTICE
    assert values["reviewer"] == "Marie Dupont, secrétaire générale de mairie"


def test_docx_of_an_approved_draft_names_the_reviewer() -> None:
    document = docx.Document(io.BytesIO(to_docx(_approved(_arrete()))))
    expected = (
        "Validé par Marie Dupont, secrétaire générale de mairie, le 27 novembre 2026. "
        "Relecteur : identité déclarée, non vérifiée."
    )

    assert document.paragraphs[1].text == expected
    assert expected in document.core_properties.comments
    assert AI_NOTICE in document.core_properties.comments
    assert len(document.core_properties.comments) > 255
    assert expected in document.sections[0].footer.paragraphs[0].text


# --- OpenDocument -----------------------------------------------------------------------------


def test_odt_of_an_arrete_carries_text_notice_and_metadata() -> None:
    data = to_odt(_arrete())
    body = _odt_body(data)
    text = "\n".join(body)

    assert AI_NOTICE in text
    assert "Arrêté n° 2026-042 portant interdiction temporaire de stationner" in text
    assert any(line.startswith("Article 1er : Le stationnement est interdit") for line in body)
    assert "Article 3" in body
    assert "Considérant qu'il convient d'assurer la sécurité des usagers et des ouvriers ;" in body

    document = load(io.BytesIO(data))
    first = document.text.childNodes[0]
    assert AI_NOTICE in teletype.extractText(first)
    headings = [teletype.extractText(h) for h in document.text.getElementsByType(odf_text.H)]
    assert headings[0] == "Commune de Saint-Étienne-du-Rouvray"
    items = [teletype.extractText(i) for i in document.text.getElementsByType(odf_text.ListItem)]
    assert items == [
        "panneaux B6a1 à chaque extrémité ;",
        "information des riverains par voie d'affichage.",
    ]
    footer = "".join(
        teletype.extractText(p) for p in document.masterstyles.getElementsByType(odf_text.P)
    )
    assert AI_NOTICE in footer

    fields, user_defined = _odt_meta(data)
    assert fields["title"] == [ARRETE_TITLE]
    assert fields["description"] == [AI_NOTICE]
    assert "IA" in fields["keyword"]
    assert "Plume" in fields["keyword"]
    assert fields["initial-creator"] == ["Plume — Saint-Étienne-du-Rouvray"]
    assert user_defined["ai_assisted"] == ("boolean", "true")
    assert user_defined["ai_notice"] == ("string", AI_NOTICE)
    assert "reviewer" not in user_defined


def test_odt_of_an_approved_draft_names_the_reviewer() -> None:
    data = to_odt(_approved(_arrete()))
    expected = (
        "Validé par Marie Dupont, secrétaire générale de mairie, le 27 novembre 2026. "
        "Relecteur : identité déclarée, non vérifiée."
    )

    assert expected in _odt_body(data)
    fields, user_defined = _odt_meta(data)
    assert fields["description"] == [f"{AI_NOTICE} {expected}"]
    assert user_defined["reviewer"] == ("string", "Marie Dupont, secrétaire générale de mairie")


# --- Every format -----------------------------------------------------------------------------


@pytest.mark.parametrize("format", FORMATS)
def test_courrier_exports_with_notice_title_and_accents(format: ExportFormat) -> None:
    data, _, filename = export(_courrier(), format)
    text = _visible_text(data, format)

    assert AI_NOTICE in text.replace("\\", "")
    assert "Objet : Réponse à votre demande d'élagage" in text
    assert "Madame Hélène Lefèvre" in text
    assert "Je vous prie d'agréer, Madame, l'expression de mes salutations distinguées." in text
    assert filename == f"courrier-reponse-a-votre-demande-d-elagage.{format}"


@pytest.mark.parametrize("format", FORMATS)
def test_title_is_added_when_the_text_has_none(format: ExportFormat) -> None:
    draft = _courrier(title="Travaux de voirie", text="Madame,\n\nLes travaux commencent lundi.")

    text = _visible_text(export(draft, format)[0], format)

    assert "Travaux de voirie" in text
    assert text.index("Travaux de voirie") < text.index("Les travaux commencent lundi.")


@pytest.mark.parametrize("format", FORMATS)
def test_approved_draft_shows_the_reviewer_in_every_format(format: ExportFormat) -> None:
    text = _visible_text(export(_approved(_courrier()), format)[0], format)

    assert "Marie Dupont" in text
    assert "secrétaire générale de mairie" in text
    assert "27 novembre 2026" in text


@pytest.mark.parametrize("format", FORMATS)
def test_rejected_draft_says_so(format: ExportFormat) -> None:
    draft = dataclasses.replace(_approved(_arrete()), status="rejected")

    text = _visible_text(export(draft, format)[0], format)

    assert "Rejeté par Marie Dupont" in text
    assert "Validé" not in text


@pytest.mark.parametrize("format", FORMATS)
def test_markup_and_invalid_characters_export_as_text(format: ExportFormat) -> None:
    hostile = (
        "# <script>alert('x')</script> & Cie\n\n"
        "Coût < 5 000 € & délai > 2 mois ; « guillemets » — 🌳\r\n"
        "Caractères de contrôle : \x00\x01\x0b\x0c\x1f fin ; surrogate \ud800 seul.\n"
        "- <b>gras</b> & <![CDATA[x]]>\n"
        "**Article 1er**\n"
    )
    draft = _arrete(
        title="<Arrêté> & \x00 test",
        text=hostile,
        commune_name="Saint-Pierre-lès-Elbeuf & <Cie>",
        ai_notice=f"{AI_NOTICE} <i>&amp;</i>",
    )

    data, _, filename = export(_approved(draft), format)
    text = _visible_text(data, format).replace("\\", "")

    assert "<script>alert('x')</script> & Cie" in text
    assert "Coût < 5 000 € & délai > 2 mois ; « guillemets » — 🌳" in text
    assert "Caractères de contrôle :  fin ; surrogate  seul." in text
    assert "<b>gras</b> & <![CDATA[x]]>" in text
    assert "Article 1er" in text
    assert f"{AI_NOTICE} <i>&amp;</i>" in text
    assert filename.isascii()


@pytest.mark.parametrize("format", FORMATS)
def test_empty_text_falls_back_to_sections(format: ExportFormat) -> None:
    draft = _arrete(text="", ai_notice="")

    text = _visible_text(export(draft, format)[0], format)

    # A blank notice is replaced by the standard one rather than left out.
    assert AI_NOTICE in text.replace("\\", "")
    assert "Vu le code de la route ;" in text
    assert "Article 1er" in text
    assert "Le stationnement est interdit." in text


@pytest.mark.parametrize("format", FORMATS)
def test_empty_draft_exports(format: ExportFormat) -> None:
    draft = _courrier(title="", text="", commune_name="")

    data, _, filename = export(draft, format)

    assert AI_NOTICE in _visible_text(data, format).replace("\\", "")
    assert filename == f"courrier-5f0c2b1a.{format}"


@pytest.mark.parametrize("format", FORMATS)
def test_long_text_exports(format: ExportFormat) -> None:
    part = "Considérant que la voirie communale doit être entretenue & préservée ; " * 4
    text = "\n\n".join(
        f"## Partie {i}\n{part}" if i % 5 == 0 else f"- point {i} : {part}" for i in range(600)
    )
    draft = _courrier(kind="synthese", title="Synthèse du rapport annuel", text=text)

    data, _, _ = export(draft, format)
    visible = _visible_text(data, format)

    assert "Partie 595" in visible
    assert "- point 599 : " in visible if format == "md" else "point 599 : " in visible


# --- Names and dates --------------------------------------------------------------------------


def test_export_answers_media_type_and_filename() -> None:
    expected = {
        "md": "text/markdown; charset=utf-8",
        "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "odt": "application/vnd.oasis.opendocument.text",
    }
    for format in FORMATS:
        _, media_type, filename = export(_arrete(), format)
        assert media_type == expected[format]
        assert filename == (
            f"arrete-portant-interdiction-temporaire-de-stationner-rue-de-l.{format}"
        )


def test_filename_slug_is_ascii_and_at_most_60_characters() -> None:
    draft = _arrete(
        kind="bulletin_article",
        title="Le Cœur de ville renaît : œuvres, fêtes et marchés de Noël à Saint-Valery-en-Caux",
    )

    filename = export(draft, "odt")[2]

    assert filename.startswith("bulletin-article-le-coeur-de-ville-renait-oeuvres-fetes")
    assert filename.endswith(".odt")
    slug = filename.removeprefix("bulletin-article-").removesuffix(".odt")
    assert len(slug) <= 60
    assert not slug.endswith("-")


def test_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="Format d'export inconnu"):
        export(_arrete(), "pdf")  # type: ignore[arg-type]


def test_french_dates() -> None:
    assert format_french_date(datetime(2026, 11, 27, 10, 0, tzinfo=UTC)) == "27 novembre 2026"
    assert format_french_date(datetime(2027, 3, 1, 10, 0, tzinfo=UTC)) == "1er mars 2027"
    assert format_french_date(datetime(2026, 12, 31, 23, 30, tzinfo=UTC)) == "1er janvier 2027"
    assert format_french_date(datetime(2026, 8, 15)) == "15 août 2026"


# --- LibreOffice, when installed --------------------------------------------------------------


# Slow lane: runs LibreOffice as a subprocess.
@pytest.mark.slow
@pytest.mark.parametrize("format", ["docx", "odt"])
def test_libreoffice_opens_the_export(format: ExportFormat, tmp_path: Path) -> None:
    office = require_tool("soffice", "libreoffice", what="LibreOffice")
    data, _, filename = export(_approved(_arrete()), format)
    source = tmp_path / filename
    source.write_bytes(data)

    subprocess.run(
        [
            office,
            f"-env:UserInstallation=file://{tmp_path / 'profile'}",
            "--headless",
            "--convert-to",
            "txt:Text (encoded):UTF8",
            "--outdir",
            str(tmp_path / "out"),
            str(source),
        ],
        check=True,
        timeout=120,
        capture_output=True,
    )

    text = (tmp_path / "out" / source.with_suffix(".txt").name).read_text(encoding="utf-8-sig")
    assert AI_NOTICE in text
    assert "Article 1er" in text
    assert "Validé par Marie Dupont" in text
