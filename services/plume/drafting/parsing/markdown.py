"""A provider's Markdown as lines of plain text, with what their markup said about each one."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from plume.drafting.parsing.vocabulary import (
    BOLD_ARTICLE_LABEL,
    BOLD_ONLY,
    BULLET,
    FENCE,
    HTML_TAG,
    QUOTE,
    RULE,
    SPACES,
)


@dataclass(frozen=True)
class Line:
    text: str  # without heading, list or emphasis markers
    body: str  # the same, keeping the list marker: article bodies keep their lists
    heading: bool  # a Markdown heading or a line wholly in bold
    bold_article_label: bool
    bullet: bool
    rule: bool
    blank_before: bool


def lines(text: str) -> Iterator[Line]:
    blank_before = True
    for raw in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if FENCE.match(raw):
            blank_before = True
            continue
        line = _clean(raw, blank_before)
        if line is None:
            blank_before = True
            continue
        blank_before = False
        yield line


def _clean(raw: str, blank_before: bool) -> Line | None:
    s = QUOTE.sub("", raw.strip()).strip()
    if not s:
        return None
    if RULE.match(s):
        return Line("", "", False, False, False, True, blank_before)
    heading = False
    if (title := heading_text(s)) is not None:
        heading = True
        s = title
    marker = ""
    bullet = False
    if m := BULLET.match(s):
        bullet = True
        marker = m.group("marker")
        s = s[m.end() :]
    bold_article_label = bool(BOLD_ARTICLE_LABEL.match(s))
    heading = heading or bool(BOLD_ONLY.match(s) and s.count("**") == 2)
    s = HTML_TAG.sub("", s.replace("**", "")).replace("\\", "")
    s = _strip_wrapping(s)
    s = SPACES.sub(" ", s).strip()
    if not s:
        return None
    body = f"{marker} {s}" if bullet else s
    return Line(s, body, heading, bold_article_label, bullet, False, blank_before)


def heading_text(line: str) -> str | None:
    """The text of an ATX heading ("## Objet ##" -> "Objet"), None if the line is none.

    String operations in linear time: the pattern they replace (up to six "#", spaces, a lazy
    group, closing "#" and spaces) gave the same text but backtracked cubically over a long
    run of spaces and "#" (a 4.8 KB line took seconds)."""
    if not line.startswith("#"):
        return None
    level = min(len(line) - len(line.lstrip("#")), 6)
    return line[level:].strip().rstrip("#").rstrip()


def _strip_wrapping(s: str) -> str:
    # Italic notes ("*Le présent arrêté peut…*"), possibly spread over several lines; a run of
    # "_" stays: it is the blank left to fill in ("Fait à La Haye, le ______").
    if len(s) > 2 and s[0] == s[-1] and s[0] in "*_" and s[1] not in "*_ ":
        return s[1:-1].strip()
    if len(s) > 1 and s[0] in "*_" and s[1] not in "*_ ":
        s = s[1:]
    if len(s) > 1 and s[-1] in "*_" and s[-2] not in "*_ ":
        s = s[:-1]
    return s.strip()
