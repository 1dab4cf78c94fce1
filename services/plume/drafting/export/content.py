"""What every export format shows: the draft, its AI notice and review, and its parsed blocks."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from plume.dates import PARIS
from plume.drafting.document import AI_NOTICE, ActeNature, Sections
from plume.drafting.export.inline import Run, merge, parse_inline
from plume.french import KIND_TITLES, french_day

ExportFormat = Literal["md", "docx", "odt"]

STATUS_LABELS: dict[str, str] = {
    "draft": "Projet",
    "processing": "En cours de rédaction",
    "approved": "Validé",
    "rejected": "Rejeté",
    "failed": "Échec de la rédaction",
}

_SLUG_MAX = 60
NOTICE_LABEL = "Mention d'usage de l'intelligence artificielle"
LANGUAGE = "fr-FR"


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
    # A signed-in agent's review (ProConnect); a name declared by a key is not verified.
    reviewer_verified: bool = False
    reviewed_at: datetime | None = None
    acte_nature: ActeNature | None = None


def format_french_date(value: datetime) -> str:
    """'27 novembre 2026', '1er mars 2027', in Paris time."""
    # Acts are dated where they are signed, whatever the server's clock says.
    local = value.astimezone(PARIS) if value.tzinfo is not None else value
    return french_day(local.date())


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
class Content:
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


def content_of(draft: ExportableDraft) -> Content:
    commune = clean(draft.commune_name).strip()
    kind_label = KIND_TITLES.get(draft.kind, clean(draft.kind))
    title = clean(draft.title).strip()
    if not title and draft.sections and draft.sections.title:
        title = clean(draft.sections.title).strip()
    title = title or kind_label
    markdown = clean(draft.text).replace("\r\n", "\n").replace("\r", "\n")
    if not markdown.strip() and draft.sections is not None:
        markdown = clean(_sections_markdown(draft.kind, draft.sections))
    # A blank notice would defeat the point of the export; the standard one stands in.
    notice = " ".join(clean(draft.ai_notice).split()) or AI_NOTICE
    reviewer = _reviewer(draft)
    review_line = _review_line(draft, reviewer)
    status_line = review_line or "Projet non encore validé par un agent habilité."
    nature = (
        f"{clean(draft.acte_nature.code)} {clean(draft.acte_nature.label)}"
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
    return Content(
        title=title,
        markdown=markdown,
        notice=notice,
        status_line=status_line,
        review_line=review_line,
        reviewer=reviewer,
        commune=commune,
        author=f"Plume — {commune}" if commune else "Plume",
        kind_label=kind_label,
        status_label=STATUS_LABELS.get(draft.status, clean(draft.status)),
        subject=subject,
        keywords=keywords,
        description=description,
    )


def _reviewer(draft: ExportableDraft) -> str | None:
    if draft.status not in ("approved", "rejected"):
        return None
    parts = [clean(p).strip() for p in (draft.reviewer_name, draft.reviewer_title) if p]
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
    line += "."
    if reviewer:
        identity = (
            "identité vérifiée" if draft.reviewer_verified else "identité déclarée, non vérifiée"
        )
        line += f" Relecteur : {identity}."
    return line


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


def clean(value: str | None) -> str:
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


def shows_title(markdown: str, title: str) -> bool:
    """Whether the text already has a title of its own, so that the export adds none."""
    wanted = _normalised(title)
    return (
        not wanted
        or wanted in _normalised(markdown)
        or any(heading(line.strip()) is not None for line in markdown.split("\n"))
    )


# --- Markdown parsing, shared by docx and odt -------------------------------------------------


@dataclass(frozen=True)
class Block:
    kind: Literal["heading", "paragraph", "bullet", "quote"]
    runs: tuple[Run, ...]
    level: int = 0


MAX_HEADING_LEVEL = 4
_BULLET = re.compile(r"^\s*[-*+•]\s+(.*)$")
_QUOTE = re.compile(r"^\s*>\s?(.*)$")
_RULE = re.compile(r"^\s*([-*_])(?:\s*\1){2,}\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")
# "Article 1er", "Article 2 :", "Article 3 –", but not "Article 2 de la loi du…" in a visa.
_ARTICLE = re.compile(
    r"^Article\s+(?:1er|premier|\d+)(?:\s+(?:bis|ter|quater))?\s*(?:[:.–—-]\s*|$)", re.IGNORECASE
)


def heading(line: str) -> tuple[int, str] | None:
    """An ATX heading's level and text ("## Objet ##" -> (2, "Objet")), None if the line is
    none: one to six "#" then a space, and an optional closing run of "#" after a space.

    String operations in linear time: the pattern they replace gave the same results but
    backtracked quadratically over long runs of spaces and "#"."""
    level = len(line) - len(line.lstrip("#"))
    if not 1 <= level <= 6 or not line[level : level + 1].isspace():
        return None
    text = line[level:].strip()
    unclosed = text.rstrip("#")
    if unclosed != text and unclosed[-1:].isspace():
        text = unclosed.rstrip()
    return level, text


def _paragraph_runs(line: str) -> tuple[Run, ...]:
    article = _ARTICLE.match(line)
    if article is not None:
        # An article's number must stand out even when the model did not bold it.
        rest = parse_inline(line[article.end() :])
        return merge(
            [Run(article.group(0).rstrip(), bold=True), *([Run(" ")] if rest else []), *rest]
        )
    return parse_inline(line)


def _blocks(markdown: str) -> Iterator[Block]:
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
            yield Block("paragraph", (Run(raw.rstrip()),))
            continue
        if _RULE.match(line):
            continue
        if (title := heading(line)) is not None:
            level, text = title
            if runs := parse_inline(text):
                yield Block("heading", runs, min(level, MAX_HEADING_LEVEL))
        elif bullet := _BULLET.match(line):
            yield Block("bullet", _paragraph_runs(bullet.group(1).strip()))
        elif quote := _QUOTE.match(line):
            if runs := _paragraph_runs(quote.group(1).strip()):
                yield Block("quote", runs)
        elif runs := _paragraph_runs(line):
            yield Block("paragraph", runs)


def document_blocks(content: Content) -> list[Block]:
    blocks = list(_blocks(content.markdown))
    if not shows_title(content.markdown, content.title):
        blocks.insert(0, Block("heading", (Run(content.title),), 1))
    return blocks
