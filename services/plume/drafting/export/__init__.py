"""Exports of a draft to Markdown, Word (docx) and OpenDocument (odt), carrying the AI notice."""

from __future__ import annotations

from plume.drafting.export.content import (
    STATUS_LABELS,
    ExportableDraft,
    ExportFormat,
    export_filename,
    format_french_date,
)
from plume.drafting.export.docx import to_docx
from plume.drafting.export.markdown import to_markdown
from plume.drafting.export.odt import to_odt

__all__ = [
    "MEDIA_TYPES",
    "STATUS_LABELS",
    "ExportFormat",
    "ExportableDraft",
    "export",
    "export_filename",
    "format_french_date",
    "to_docx",
    "to_markdown",
    "to_odt",
]

MEDIA_TYPES: dict[ExportFormat, str] = {
    "md": "text/markdown; charset=utf-8",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "odt": "application/vnd.oasis.opendocument.text",
}


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
