"""Exports of a draft to Markdown, Word (docx) and OpenDocument (odt), carrying the AI notice."""

from __future__ import annotations

import io
import re
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from xml.sax.saxutils import escape
from zoneinfo import ZoneInfo

import docx
from docx.document import Document as DocxDocument
from docx.opc.constants import CONTENT_TYPE as CT
from docx.opc.constants import RELATIONSHIP_TYPE as RT
from docx.opc.packuri import PackURI
from docx.opc.part import Part, XmlPart
from docx.oxml import OxmlElement
from docx.oxml.ns import qn
from docx.shared import Mm, Pt, RGBColor
from docx.text.paragraph import Paragraph
from odf import (  # type: ignore[import-untyped, unused-ignore]
    dc,
    meta,
    teletype,
)
from odf import style as odf_style  # type: ignore[import-untyped, unused-ignore]
from odf import text as odf_text  # type: ignore[import-untyped, unused-ignore]
from odf.opendocument import OpenDocumentText  # type: ignore[import-untyped, unused-ignore]

from plume.drafting.document import AI_NOTICE, ActeNature, Sections
from plume.french import french_day

ExportFormat = Literal["md", "docx", "odt"]

MEDIA_TYPES: dict[ExportFormat, str] = {
    "md": "text/markdown; charset=utf-8",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "odt": "application/vnd.oasis.opendocument.text",
}

KIND_LABELS: dict[str, str] = {
    "arrete": "Arrêté",
    "deliberation": "Délibération",
    "courrier": "Courrier",
    "bulletin_article": "Article de bulletin municipal",
    "synthese": "Synthèse",
}

STATUS_LABELS: dict[str, str] = {
    "draft": "Projet",
    "processing": "En cours de rédaction",
    "approved": "Validé",
    "rejected": "Rejeté",
    "failed": "Échec de la rédaction",
}

# Acts are dated where they are signed, whatever the server's clock says.
_PARIS = ZoneInfo("Europe/Paris")
_SLUG_MAX = 60
_NOTICE_LABEL = "Mention d'usage de l'intelligence artificielle"
_LANGUAGE = "fr-FR"


@dataclass(frozen=True)
class ExportableDraft:
    id: str
    kind: str
    title: str
    text: str
    sections: Sections | None
    ai_notice: str
    status: str
    commune_name: str
    created_at: datetime
    reviewer_name: str | None = None
    reviewer_title: str | None = None
    reviewed_at: datetime | None = None
    acte_nature: ActeNature | None = None


def format_french_date(value: datetime) -> str:
    """'27 novembre 2026', '1er mars 2027', in Paris time."""
    local = value.astimezone(_PARIS) if value.tzinfo is not None else value
    return french_day(local.date())


def export(draft: ExportableDraft, format: ExportFormat) -> tuple[bytes, str, str]:
    """The file's bytes, its media type and a download file name."""
    if format == "md":
        data = to_markdown(draft)
    elif format == "docx":
        data = to_docx(draft)
    elif format == "odt":
        data = to_odt(draft)
    else:
        raise ValueError(f"Format d'export inconnu : {format!r}")
    return data, MEDIA_TYPES[format], export_filename(draft, format)


def export_filename(draft: ExportableDraft, format: ExportFormat) -> str:
    """'arrete-portant-interdiction-de-stationner.docx': ASCII, safe in a Content-Disposition."""
    kind = _slugify(draft.kind) or "document"
    title = _slugify(draft.title or (draft.sections.title if draft.sections else None) or "")
    # Titles usually start with the kind ("Arrêté portant…"): don't say it twice.
    if title.startswith(kind + "-"):
        title = title[len(kind) + 1 :]
    title = _truncate_slug(title) or _slugify(draft.id)[:8] or "sans-titre"
    return f"{kind}-{title}.{format}"


# --- Shared content --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Content:
    """What every format shows, cleaned once so that no exporter meets text XML refuses."""

    title: str
    markdown: str
    notice: str
    status_line: str
    review_line: str | None
    reviewer: str | None
    commune: str
    author: str
    kind_label: str
    status_label: str
    subject: str
    keywords: tuple[str, ...]
    description: str


def _content(draft: ExportableDraft) -> _Content:
    commune = _clean(draft.commune_name).strip()
    kind_label = KIND_LABELS.get(draft.kind, _clean(draft.kind))
    title = _clean(draft.title).strip()
    if not title and draft.sections and draft.sections.title:
        title = _clean(draft.sections.title).strip()
    title = title or kind_label
    markdown = _clean(draft.text).replace("\r\n", "\n").replace("\r", "\n")
    if not markdown.strip() and draft.sections is not None:
        markdown = _clean(_sections_markdown(draft.kind, draft.sections))
    # A blank notice would defeat the point of the export; the standard one stands in.
    notice = " ".join(_clean(draft.ai_notice).split()) or AI_NOTICE
    reviewer = _reviewer(draft)
    review_line = _review_line(draft, reviewer)
    status_line = review_line or "Projet non encore validé par un agent habilité."
    nature = (
        f"{_clean(draft.acte_nature.code)} {_clean(draft.acte_nature.label)}"
        if draft.acte_nature
        else None
    )
    subject = " — ".join(p for p in (kind_label, nature, commune) if p)
    keywords = tuple(
        dict.fromkeys(
            k
            for k in ("IA", "Plume", "intelligence artificielle", kind_label, commune, nature)
            if k
        )
    )
    description = f"{notice} {review_line}" if review_line else notice
    return _Content(
        title=title,
        markdown=markdown,
        notice=notice,
        status_line=status_line,
        review_line=review_line,
        reviewer=reviewer,
        commune=commune,
        author=f"Plume — {commune}" if commune else "Plume",
        kind_label=kind_label,
        status_label=STATUS_LABELS.get(draft.status, _clean(draft.status)),
        subject=subject,
        keywords=keywords,
        description=description,
    )


def _reviewer(draft: ExportableDraft) -> str | None:
    if draft.status not in ("approved", "rejected"):
        return None
    parts = [_clean(p).strip() for p in (draft.reviewer_name, draft.reviewer_title) if p]
    return ", ".join(p for p in parts if p) or None


def _review_line(draft: ExportableDraft, reviewer: str | None) -> str | None:
    if draft.status == "approved":
        verb = "Validé"
    elif draft.status == "rejected":
        verb = "Rejeté"
    else:
        return None
    line = verb
    if reviewer:
        line += f" par {reviewer}"
    if draft.reviewed_at is not None:
        line += f"{',' if reviewer else ''} le {format_french_date(draft.reviewed_at)}"
    return line + "."


def _sections_markdown(kind: str, sections: Sections) -> str:
    """A readable document when only the structured parts of an act are known."""
    blocks: list[str] = []
    if sections.title:
        blocks.append(f"# {sections.title}")
    if sections.visas:
        blocks.append("\n".join(sections.visas))
    if sections.considerants:
        blocks.append("\n".join(sections.considerants))
    if sections.articles:
        blocks.append(
            "**ARRÊTE :**" if kind == "arrete" else "**Après en avoir délibéré, DÉCIDE :**"
        )
        blocks.extend(f"**Article {a.number}** : {a.text}" for a in sections.articles)
    if sections.mentions:
        blocks.append("\n".join(sections.mentions))
    if sections.signature:
        blocks.append(sections.signature)
    return "\n\n".join(blocks)


# XML 1.0 refuses these characters, and lone surrogates cannot be encoded: either would make a
# document unreadable or the export fail.
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def _clean(value: str | None) -> str:
    return _XML_INVALID.sub("", value or "")


def _slugify(value: str) -> str:
    # NFKD leaves ligatures whole, and French uses them ("Cœur de ville").
    value = value.replace("œ", "oe").replace("Œ", "OE").replace("æ", "ae").replace("Æ", "AE")
    value = value.replace("ß", "ss")
    ascii_only = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", "-", ascii_only.lower()).strip("-")


def _truncate_slug(slug: str) -> str:
    if len(slug) <= _SLUG_MAX:
        return slug
    cut = slug[:_SLUG_MAX]
    if slug[_SLUG_MAX] != "-" and "-" in cut:
        cut = cut.rsplit("-", 1)[0]
    return cut.strip("-")


def _normalised(value: str) -> str:
    return " ".join(re.sub(r"[*_#`>\\]", " ", value).split()).casefold()


def _shows_title(markdown: str, title: str) -> bool:
    """Whether the text already has a title of its own, so that the export adds none."""
    wanted = _normalised(title)
    return (
        not wanted
        or wanted in _normalised(markdown)
        or any(_HEADING.match(line.strip()) for line in markdown.split("\n"))
    )


# --- Markdown parsing, shared by docx and odt -------------------------------------------------


@dataclass(frozen=True)
class _Run:
    text: str
    bold: bool = False
    italic: bool = False


@dataclass(frozen=True)
class _Block:
    kind: Literal["heading", "paragraph", "bullet", "quote"]
    runs: tuple[_Run, ...]
    level: int = 0


_MAX_HEADING_LEVEL = 4
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)(?:\s+#+)?\s*$")
_BULLET = re.compile(r"^\s*[-*+•]\s+(.*)$")
_QUOTE = re.compile(r"^\s*>\s?(.*)$")
_RULE = re.compile(r"^\s*([-*_])(?:\s*\1){2,}\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")
# "Article 1er", "Article 2 :", "Article 3 –", but not "Article 2 de la loi du…" in a visa.
_ARTICLE = re.compile(
    r"^Article\s+(?:1er|premier|\d+)(?:\s+(?:bis|ter|quater))?\s*(?:[:.–—-]\s*|$)", re.IGNORECASE
)
_INLINE = re.compile(
    r"\\(?P<escaped>[\\`*_{}\[\]()#+\-.!>|])"
    r"|\*\*(?P<bold>.+?)\*\*"
    r"|__(?P<bold2>.+?)__"
    r"|\*(?P<italic>[^\s*](?:.*?[^\s\\])?)\*"
    r"|(?<!\w)_(?P<italic2>[^\s_](?:.*?[^\s\\])?)_(?!\w)"
    r"|`(?P<code>[^`]+)`"
    r"|\[(?P<label>[^\]]+)\]\((?P<url>[^)\s]+)\)"
)
_UNESCAPE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!>|])")


def _parse_inline(line: str, *, bold: bool = False, italic: bool = False) -> tuple[_Run, ...]:
    runs: list[_Run] = []
    position = 0
    for match in _INLINE.finditer(line):
        if match.start() > position:
            runs.append(_Run(line[position : match.start()], bold, italic))
        position = match.end()
        groups = match.groupdict()
        if groups["escaped"] is not None:
            runs.append(_Run(groups["escaped"], bold, italic))
        elif groups["bold"] is not None or groups["bold2"] is not None:
            inner = groups["bold"] if groups["bold"] is not None else groups["bold2"]
            runs.extend(_parse_inline(inner, bold=True, italic=italic))
        elif groups["italic"] is not None or groups["italic2"] is not None:
            inner = groups["italic"] if groups["italic"] is not None else groups["italic2"]
            runs.extend(_parse_inline(inner, bold=bold, italic=True))
        elif groups["code"] is not None:
            runs.append(_Run(groups["code"], bold, italic))
        else:
            label, url = _UNESCAPE.sub(r"\1", groups["label"]), groups["url"]
            runs.append(_Run(label if label == url else f"{label} ({url})", bold, italic))
    if position < len(line):
        runs.append(_Run(line[position:], bold, italic))
    return _merge(runs)


def _merge(runs: Sequence[_Run]) -> tuple[_Run, ...]:
    merged: list[_Run] = []
    for run in runs:
        if not run.text:
            continue
        if merged and (merged[-1].bold, merged[-1].italic) == (run.bold, run.italic):
            merged[-1] = _Run(merged[-1].text + run.text, run.bold, run.italic)
        else:
            merged.append(run)
    return tuple(merged)


def _paragraph_runs(line: str) -> tuple[_Run, ...]:
    article = _ARTICLE.match(line)
    if article is not None:
        # An article's number must stand out even when the model did not bold it.
        rest = _parse_inline(line[article.end() :])
        return _merge(
            [_Run(article.group(0).rstrip(), bold=True), *([_Run(" ")] if rest else []), *rest]
        )
    return _parse_inline(line)


def _blocks(markdown: str) -> Iterator[_Block]:
    """One block per non-blank line: acts put each visa and considérant on its own line."""
    in_fence = False
    for raw in markdown.split("\n"):
        if _FENCE.match(raw):
            in_fence = not in_fence
            continue
        line = raw.strip()
        if not line:
            continue
        if in_fence:
            yield _Block("paragraph", (_Run(raw.rstrip()),))
            continue
        if _RULE.match(line):
            continue
        if heading := _HEADING.match(line):
            level = min(len(heading.group(1)), _MAX_HEADING_LEVEL)
            runs = _parse_inline(heading.group(2))
            if runs:
                yield _Block("heading", runs, level)
        elif bullet := _BULLET.match(line):
            yield _Block("bullet", _paragraph_runs(bullet.group(1).strip()))
        elif quote := _QUOTE.match(line):
            if runs := _paragraph_runs(quote.group(1).strip()):
                yield _Block("quote", runs)
        elif runs := _paragraph_runs(line):
            yield _Block("paragraph", runs)


def _document_blocks(content: _Content) -> list[_Block]:
    blocks = list(_blocks(content.markdown))
    if not _shows_title(content.markdown, content.title):
        blocks.insert(0, _Block("heading", (_Run(content.title),), 1))
    return blocks


# --- Markdown ---------------------------------------------------------------------------------


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>#|])")


def _md_escape(value: str) -> str:
    return _MD_SPECIAL.sub(r"\\\1", value)


def to_markdown(draft: ExportableDraft) -> bytes:
    content = _content(draft)
    lines = [
        f"> **{_NOTICE_LABEL}** : {_md_escape(content.notice)}",
        ">",
        f"> **{_md_escape(content.status_line)}**",
        "",
        "---",
        "",
    ]
    if not _shows_title(content.markdown, content.title):
        lines += [f"# {_md_escape(content.title)}", ""]
    body = content.markdown.strip("\n")
    return ("\n".join(lines) + body + "\n").encode("utf-8")


# --- Word -------------------------------------------------------------------------------------


_NOTICE_GREY = RGBColor(0x40, 0x40, 0x40)
_CORE_TEXT_LIMIT = 255


def to_docx(draft: ExportableDraft) -> bytes:
    content = _content(draft)
    document = docx.Document()
    _docx_page_and_language(document)

    notice = document.add_paragraph()
    _docx_add_run(notice, f"{_NOTICE_LABEL} : ", bold=True, italic=True, grey=True)
    _docx_add_run(notice, content.notice, italic=True, grey=True)
    status = document.add_paragraph()
    _docx_add_run(status, content.status_line, bold=True, italic=True, grey=True)

    for block in _document_blocks(content):
        if block.kind == "heading":
            paragraph = document.add_paragraph(style=f"Heading {block.level}")
        elif block.kind == "bullet":
            paragraph = document.add_paragraph(style="List Bullet")
        elif block.kind == "quote":
            paragraph = document.add_paragraph(style="Quote")
        else:
            paragraph = document.add_paragraph()
        for run in block.runs:
            _docx_add_run(paragraph, run.text, bold=run.bold, italic=run.italic)

    footer = document.sections[0].footer
    footer.is_linked_to_previous = False
    footer_paragraph = footer.paragraphs[0] if footer.paragraphs else footer.add_paragraph()
    footer_text = (
        f"{content.notice} {content.review_line}" if content.review_line else content.notice
    )
    _docx_add_run(footer_paragraph, footer_text, italic=True, grey=True, size=Pt(8))

    _docx_metadata(document, draft, content)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def _docx_add_run(
    paragraph: Paragraph,
    text: str,
    *,
    bold: bool = False,
    italic: bool = False,
    grey: bool = False,
    size: Pt | None = None,
) -> None:
    run = paragraph.add_run(text)
    if bold:
        run.bold = True
    if italic:
        run.italic = True
    if grey:
        run.font.color.rgb = _NOTICE_GREY
    if size is not None:
        run.font.size = size


def _docx_page_and_language(document: DocxDocument) -> None:
    # python-docx's template is US Letter in English; a mairie prints A4 and spell-checks French.
    for section in document.sections:
        section.page_width, section.page_height = Mm(210), Mm(297)
        section.left_margin = section.right_margin = Mm(25)
        section.top_margin = section.bottom_margin = Mm(20)
    for lang in document.styles.element.xpath("w:docDefaults/w:rPrDefault/w:rPr/w:lang"):
        lang.set(qn("w:val"), _LANGUAGE)


def _docx_metadata(document: DocxDocument, draft: ExportableDraft, content: _Content) -> None:
    properties = document.core_properties
    properties.author = content.author[:_CORE_TEXT_LIMIT]
    properties.last_modified_by = (content.reviewer or content.author)[:_CORE_TEXT_LIMIT]
    properties.category = _clean(draft.kind)[:_CORE_TEXT_LIMIT]
    properties.content_status = content.status_label[:_CORE_TEXT_LIMIT]
    properties.identifier = _clean(draft.id)[:_CORE_TEXT_LIMIT]
    properties.language = _LANGUAGE
    properties.revision = 1
    properties.created = _utc(draft.created_at)
    properties.modified = _utc(draft.reviewed_at or draft.created_at)
    # python-docx refuses more than 255 characters, which the notice plus a reviewer exceeds;
    # the format itself sets no such limit, so long values go straight into the XML.
    for tag, value in (
        ("dc:title", content.title),
        ("dc:subject", content.subject),
        ("cp:keywords", ", ".join(content.keywords)),
        ("dc:description", content.description),
    ):
        _docx_core_text(document, tag, value)
    _docx_custom_properties(document, draft, content)


def _docx_core_text(document: DocxDocument, tag: str, value: str) -> None:
    part = document.part.package.part_related_by(RT.CORE_PROPERTIES)
    if not isinstance(part, XmlPart):
        raise TypeError("Propriétés du document illisibles")
    element = part.element.find(qn(tag))
    if element is None:
        element = OxmlElement(tag)
        part.element.append(element)
    element.text = value


_CUSTOM_NS = "http://schemas.openxmlformats.org/officeDocument/2006/custom-properties"
_VT_NS = "http://schemas.openxmlformats.org/officeDocument/2006/docPropsVTypes"
# The identifier Office gives its own user-defined properties.
_CUSTOM_FMTID = "{D5CDD505-2E9C-101B-9397-08002B2CF9AE}"


def _docx_custom_properties(
    document: DocxDocument, draft: ExportableDraft, content: _Content
) -> None:
    """The same machine-readable marks as the odt's user-defined fields (AI Act art. 50)."""
    fields: list[tuple[str, str, str]] = [
        ("ai_assisted", "bool", "true"),
        ("ai_notice", "lpwstr", content.notice),
        ("plume_draft_id", "lpwstr", _clean(draft.id)),
        ("status", "lpwstr", _clean(draft.status)),
    ]
    if content.reviewer:
        fields.append(("reviewer", "lpwstr", content.reviewer))
    properties = "".join(
        f'<property fmtid="{_CUSTOM_FMTID}" pid="{pid}" name="{name}">'
        f"<vt:{vtype}>{escape(value)}</vt:{vtype}></property>"
        for pid, (name, vtype, value) in enumerate(fields, start=2)
    )
    blob = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        f'<Properties xmlns="{_CUSTOM_NS}" xmlns:vt="{_VT_NS}">{properties}</Properties>'
    ).encode()
    package = document.part.package
    part = Part(PackURI("/docProps/custom.xml"), CT.OFC_CUSTOM_PROPERTIES, blob, package)
    package.relate_to(part, RT.CUSTOM_PROPERTIES)


def _utc(value: datetime) -> datetime:
    # python-docx writes the clock time followed by "Z" whatever the zone.
    return value.astimezone(UTC) if value.tzinfo is not None else value


# --- OpenDocument -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _OdtStyles:
    standard: Any
    headings: dict[int, Any]
    notice: Any
    quote: Any
    bold: Any
    italic: Any
    bold_italic: Any
    bullets: Any


def to_odt(draft: ExportableDraft) -> bytes:
    content = _content(draft)
    document = OpenDocumentText()
    styles = _odt_styles(document, content)

    notice = odf_text.P(stylename=styles.notice)
    _odt_add_run(notice, _Run(f"{_NOTICE_LABEL} : ", bold=True, italic=True), styles)
    _odt_add_run(notice, _Run(content.notice, italic=True), styles)
    document.text.addElement(notice)
    status = odf_text.P(stylename=styles.notice)
    _odt_add_run(status, _Run(content.status_line, bold=True, italic=True), styles)
    document.text.addElement(status)

    bullet_list: Any = None
    for block in _document_blocks(content):
        if block.kind != "bullet":
            bullet_list = None
        if block.kind == "heading":
            element = odf_text.H(outlinelevel=block.level, stylename=styles.headings[block.level])
        elif block.kind == "quote":
            element = odf_text.P(stylename=styles.quote)
        else:
            element = odf_text.P(stylename=styles.standard)
        for run in block.runs:
            _odt_add_run(element, run, styles)
        if block.kind == "bullet":
            if bullet_list is None:
                bullet_list = odf_text.List(stylename=styles.bullets)
                document.text.addElement(bullet_list)
            item = odf_text.ListItem()
            item.addElement(element)
            bullet_list.addElement(item)
        else:
            document.text.addElement(element)

    _odt_metadata(document, draft, content)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def _odt_add_run(element: Any, run: _Run, styles: _OdtStyles) -> None:
    if run.bold and run.italic:
        target = odf_text.Span(stylename=styles.bold_italic)
    elif run.bold:
        target = odf_text.Span(stylename=styles.bold)
    elif run.italic:
        target = odf_text.Span(stylename=styles.italic)
    else:
        target = element
    # teletype keeps runs of spaces and tabs, which plain text nodes would collapse.
    teletype.addTextToElement(target, run.text)
    if target is not element:
        element.addElement(target)


def _odt_styles(document: Any, content: _Content) -> _OdtStyles:
    default = odf_style.DefaultStyle(family="paragraph")
    default.addElement(
        odf_style.TextProperties(
            fontfamily="'Liberation Sans', Arial, sans-serif",
            fontsize="11pt",
            language="fr",
            country="FR",
        )
    )
    default.addElement(odf_style.ParagraphProperties(marginbottom="0.2cm"))
    document.styles.addElement(default)
    standard = odf_style.Style(name="Standard", family="paragraph")
    document.styles.addElement(standard)

    headings: dict[int, Any] = {}
    sizes = {1: "16pt", 2: "14pt", 3: "12pt", 4: "11pt"}
    for level in range(1, _MAX_HEADING_LEVEL + 1):
        heading = odf_style.Style(
            name=f"Heading {level}",
            family="paragraph",
            parentstylename=standard,
            nextstylename=standard,
            defaultoutlinelevel=str(level),
        )
        heading.addElement(
            odf_style.ParagraphProperties(
                margintop="0.4cm", marginbottom="0.2cm", keepwithnext="always"
            )
        )
        heading.addElement(odf_style.TextProperties(fontsize=sizes[level], fontweight="bold"))
        document.styles.addElement(heading)
        headings[level] = heading

    notice = odf_style.Style(name="Plume_Notice", family="paragraph", parentstylename=standard)
    notice.addElement(
        odf_style.ParagraphProperties(
            backgroundcolor="#f2f2f2", padding="0.15cm", border="0.5pt solid #808080"
        )
    )
    notice.addElement(odf_style.TextProperties(fontstyle="italic", color="#404040"))
    document.styles.addElement(notice)

    quote = odf_style.Style(name="Quotations", family="paragraph", parentstylename=standard)
    quote.addElement(odf_style.ParagraphProperties(marginleft="1cm", marginright="1cm"))
    quote.addElement(odf_style.TextProperties(fontstyle="italic"))
    document.styles.addElement(quote)

    footer = odf_style.Style(name="Footer", family="paragraph", parentstylename=standard)
    footer.addElement(odf_style.TextProperties(fontsize="8pt", fontstyle="italic", color="#404040"))
    document.styles.addElement(footer)

    def span_style(name: str, **properties: str) -> Any:
        span = odf_style.Style(name=name, family="text")
        span.addElement(odf_style.TextProperties(**properties))
        document.automaticstyles.addElement(span)
        return span

    bold = span_style("T_Bold", fontweight="bold")
    italic = span_style("T_Italic", fontstyle="italic")
    bold_italic = span_style("T_BoldItalic", fontweight="bold", fontstyle="italic")

    bullets = odf_text.ListStyle(name="L_Bullets")
    level_style = odf_text.ListLevelStyleBullet(level="1", bulletchar="•")
    level_style.addElement(
        odf_style.ListLevelProperties(spacebefore="0.4cm", minlabelwidth="0.5cm")
    )
    bullets.addElement(level_style)
    document.automaticstyles.addElement(bullets)

    # A4 page whose footer repeats the notice on every printed page.
    layout = odf_style.PageLayout(name="Plume_Page")
    layout.addElement(
        odf_style.PageLayoutProperties(
            pagewidth="21cm",
            pageheight="29.7cm",
            printorientation="portrait",
            margintop="2cm",
            marginbottom="1.5cm",
            marginleft="2.5cm",
            marginright="2.5cm",
        )
    )
    document.automaticstyles.addElement(layout)
    master = odf_style.MasterPage(name="Standard", pagelayoutname=layout)
    page_footer = odf_style.Footer()
    footer_paragraph = odf_text.P(stylename=footer)
    footer_text = (
        f"{content.notice} {content.review_line}" if content.review_line else content.notice
    )
    teletype.addTextToElement(footer_paragraph, footer_text)
    page_footer.addElement(footer_paragraph)
    master.addElement(page_footer)
    document.masterstyles.addElement(master)

    return _OdtStyles(
        standard=standard,
        headings=headings,
        notice=notice,
        quote=quote,
        bold=bold,
        italic=italic,
        bold_italic=bold_italic,
        bullets=bullets,
    )


def _odt_metadata(document: Any, draft: ExportableDraft, content: _Content) -> None:
    created = _iso(draft.created_at)
    document.meta.addElement(dc.Title(text=content.title))
    document.meta.addElement(dc.Description(text=content.description))
    document.meta.addElement(dc.Subject(text=content.subject))
    document.meta.addElement(dc.Language(text=_LANGUAGE))
    document.meta.addElement(dc.Creator(text=content.reviewer or content.author))
    document.meta.addElement(dc.Date(text=_iso(draft.reviewed_at or draft.created_at)))
    document.meta.addElement(meta.InitialCreator(text=content.author))
    document.meta.addElement(meta.CreationDate(text=created))
    for keyword in content.keywords:
        document.meta.addElement(meta.Keyword(text=keyword))
    fields: list[tuple[str, str, str]] = [
        ("ai_assisted", "boolean", "true"),
        ("ai_notice", "string", content.notice),
        ("plume_draft_id", "string", _clean(draft.id)),
        ("document_kind", "string", _clean(draft.kind)),
        ("status", "string", _clean(draft.status)),
    ]
    if content.reviewer:
        fields.append(("reviewer", "string", content.reviewer))
    if draft.reviewed_at is not None and content.review_line:
        fields.append(("reviewed_at", "date", _iso(draft.reviewed_at)))
    for name, value_type, value in fields:
        document.meta.addElement(meta.UserDefined(name=name, valuetype=value_type, text=value))


def _iso(value: datetime) -> str:
    if value.tzinfo is None:
        return value.isoformat(timespec="seconds")
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
