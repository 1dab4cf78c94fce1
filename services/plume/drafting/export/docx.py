"""The Word (docx) export: A4, French, the AI notice in the footer and the document properties."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from xml.sax.saxutils import escape

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

from plume.drafting.export.content import (
    LANGUAGE,
    NOTICE_LABEL,
    Content,
    ExportableDraft,
    clean,
    content_of,
    document_blocks,
)

_NOTICE_GREY = RGBColor(0x40, 0x40, 0x40)
_CORE_TEXT_LIMIT = 255


def to_docx(draft: ExportableDraft) -> bytes:
    content = content_of(draft)
    document = docx.Document()
    _page_and_language(document)

    notice = document.add_paragraph()
    _add_run(notice, f"{NOTICE_LABEL} : ", bold=True, italic=True, grey=True)
    _add_run(notice, content.notice, italic=True, grey=True)
    status = document.add_paragraph()
    _add_run(status, content.status_line, bold=True, italic=True, grey=True)

    for block in document_blocks(content):
        if block.kind == "heading":
            paragraph = document.add_paragraph(style=f"Heading {block.level}")
        elif block.kind == "bullet":
            paragraph = document.add_paragraph(style="List Bullet")
        elif block.kind == "quote":
            paragraph = document.add_paragraph(style="Quote")
        else:
            paragraph = document.add_paragraph()
        for run in block.runs:
            _add_run(paragraph, run.text, bold=run.bold, italic=run.italic)

    footer = document.sections[0].footer
    footer.is_linked_to_previous = False
    footer_paragraph = footer.paragraphs[0] if footer.paragraphs else footer.add_paragraph()
    footer_text = (
        f"{content.notice} {content.review_line}" if content.review_line else content.notice
    )
    _add_run(footer_paragraph, footer_text, italic=True, grey=True, size=Pt(8))

    _metadata(document, draft, content)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def _add_run(
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


def _page_and_language(document: DocxDocument) -> None:
    # python-docx's template is US Letter in English; a mairie prints A4 and spell-checks French.
    for section in document.sections:
        section.page_width, section.page_height = Mm(210), Mm(297)
        section.left_margin = section.right_margin = Mm(25)
        section.top_margin = section.bottom_margin = Mm(20)
    for lang in document.styles.element.xpath("w:docDefaults/w:rPrDefault/w:rPr/w:lang"):
        lang.set(qn("w:val"), LANGUAGE)


def _metadata(document: DocxDocument, draft: ExportableDraft, content: Content) -> None:
    properties = document.core_properties
    properties.author = content.author[:_CORE_TEXT_LIMIT]
    properties.last_modified_by = (content.reviewer or content.author)[:_CORE_TEXT_LIMIT]
    properties.category = clean(draft.kind)[:_CORE_TEXT_LIMIT]
    properties.content_status = content.status_label[:_CORE_TEXT_LIMIT]
    properties.identifier = clean(draft.id)[:_CORE_TEXT_LIMIT]
    properties.language = LANGUAGE
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
        _core_text(document, tag, value)
    _custom_properties(document, draft, content)


def _core_text(document: DocxDocument, tag: str, value: str) -> None:
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


def _custom_properties(document: DocxDocument, draft: ExportableDraft, content: Content) -> None:
    """The same machine-readable marks as the odt's user-defined fields (AI Act art. 50)."""
    fields: list[tuple[str, str, str]] = [
        ("ai_assisted", "bool", "true"),
        ("ai_notice", "lpwstr", content.notice),
        ("plume_draft_id", "lpwstr", clean(draft.id)),
        ("status", "lpwstr", clean(draft.status)),
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
