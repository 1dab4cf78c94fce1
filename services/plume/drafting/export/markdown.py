"""The Markdown export: the text as written, under a quoted AI notice."""

from __future__ import annotations

import re

from plume.drafting.export.content import (
    NOTICE_LABEL,
    ExportableDraft,
    content_of,
    shows_title,
)

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>#|])")


def _md_escape(value: str) -> str:
    return _MD_SPECIAL.sub(r"\\\1", value)


def to_markdown(draft: ExportableDraft) -> bytes:
    content = content_of(draft)
    lines = [
        f"> **{NOTICE_LABEL}** : {_md_escape(content.notice)}",
        ">",
        f"> **{_md_escape(content.status_line)}**",
        "",
        "---",
        "",
    ]
    if not shows_title(content.markdown, content.title):
        lines += [f"# {_md_escape(content.title)}", ""]
    body = content.markdown.strip("\n")
    return ("\n".join(lines) + body + "\n").encode("utf-8")
