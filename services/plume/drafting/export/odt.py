"""The OpenDocument (odt) export: A4, French, the AI notice in the footer and the metadata."""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from odf import (  # type: ignore[import-untyped, unused-ignore]
    dc,
    meta,
    teletype,
)
from odf import style as odf_style  # type: ignore[import-untyped, unused-ignore]
from odf import text as odf_text  # type: ignore[import-untyped, unused-ignore]
from odf.opendocument import OpenDocumentText  # type: ignore[import-untyped, unused-ignore]

from plume.drafting.export.content import (
    LANGUAGE,
    MAX_HEADING_LEVEL,
    NOTICE_LABEL,
    Content,
    ExportableDraft,
    clean,
    content_of,
    document_blocks,
)
from plume.drafting.export.inline import Run


@dataclass(frozen=True)
class _Styles:
    standard: Any
    headings: dict[int, Any]
    notice: Any
    quote: Any
    bold: Any
    italic: Any
    bold_italic: Any
    bullets: Any


def to_odt(draft: ExportableDraft) -> bytes:
    content = content_of(draft)
    document = OpenDocumentText()
    styles = _styles(document, content)

    notice = odf_text.P(stylename=styles.notice)
    _add_run(notice, Run(f"{NOTICE_LABEL} : ", bold=True, italic=True), styles)
    _add_run(notice, Run(content.notice, italic=True), styles)
    document.text.addElement(notice)
    status = odf_text.P(stylename=styles.notice)
    _add_run(status, Run(content.status_line, bold=True, italic=True), styles)
    document.text.addElement(status)

    bullet_list: Any = None
    for block in document_blocks(content):
        if block.kind != "bullet":
            bullet_list = None
        if block.kind == "heading":
            element = odf_text.H(outlinelevel=block.level, stylename=styles.headings[block.level])
        elif block.kind == "quote":
            element = odf_text.P(stylename=styles.quote)
        else:
            element = odf_text.P(stylename=styles.standard)
        for run in block.runs:
            _add_run(element, run, styles)
        if block.kind == "bullet":
            if bullet_list is None:
                bullet_list = odf_text.List(stylename=styles.bullets)
                document.text.addElement(bullet_list)
            item = odf_text.ListItem()
            item.addElement(element)
            bullet_list.addElement(item)
        else:
            document.text.addElement(element)

    _metadata(document, draft, content)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def _add_run(element: Any, run: Run, styles: _Styles) -> None:
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


def _styles(document: Any, content: Content) -> _Styles:
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
    for level in range(1, MAX_HEADING_LEVEL + 1):
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

    return _Styles(
        standard=standard,
        headings=headings,
        notice=notice,
        quote=quote,
        bold=bold,
        italic=italic,
        bold_italic=bold_italic,
        bullets=bullets,
    )


def _metadata(document: Any, draft: ExportableDraft, content: Content) -> None:
    created = _iso(draft.created_at)
    document.meta.addElement(dc.Title(text=content.title))
    document.meta.addElement(dc.Description(text=content.description))
    document.meta.addElement(dc.Subject(text=content.subject))
    document.meta.addElement(dc.Language(text=LANGUAGE))
    document.meta.addElement(dc.Creator(text=content.reviewer or content.author))
    document.meta.addElement(dc.Date(text=_iso(draft.reviewed_at or draft.created_at)))
    document.meta.addElement(meta.InitialCreator(text=content.author))
    document.meta.addElement(meta.CreationDate(text=created))
    for keyword in content.keywords:
        document.meta.addElement(meta.Keyword(text=keyword))
    fields: list[tuple[str, str, str]] = [
        ("ai_assisted", "boolean", "true"),
        ("ai_notice", "string", content.notice),
        ("plume_draft_id", "string", clean(draft.id)),
        ("document_kind", "string", clean(draft.kind)),
        ("status", "string", clean(draft.status)),
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
