"""A line's inline Markdown (bold, italic, code, links, escapes) as runs of styled text.

A scanner in linear time rather than one pattern: the pattern it replaces read the rest of
the line from every unclosed "*", "_", "[" or "](": a 24,000-character line of "*a " took
seconds. It finds what the pattern found: at each position, in this order, an escaped
character, **bold**, __bold__, *italic*, _italic_, `code`, [label](url); each closed by
the nearest closing mark that fits. A line holds no line break.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Run:
    text: str
    bold: bool = False
    italic: bool = False


_ESCAPABLE = frozenset("\\`*_{}[]()#+-.!>|")
_MARK = re.compile(r"[\\*_`\[]")
_STAR_OPENS = re.compile(r"\*[^\s*]")
_STAR_CLOSES = re.compile(r"[^\s\\]\*")
_UNDERSCORE_OPENS = re.compile(r"(?<!\w)_[^\s_]")
_UNDERSCORE_CLOSES = re.compile(r"[^\s\\]_(?!\w)")
_WORD = re.compile(r"\w")
_URL_ENDS = re.compile(r"[)\s]")
_UNESCAPE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!>|])")


class _Next:
    """Where `target` next occurs in `text` at or after a position (-1: nowhere). The last
    answer is kept: asked from growing positions, it reads each character once."""

    def __init__(self, text: str, target: str | re.Pattern[str]) -> None:
        self._text = text
        self._target = target
        self._from = sys.maxsize
        self._found = -1

    def __call__(self, start: int) -> int:
        if not (self._from <= start and (self._found == -1 or start <= self._found)):
            if isinstance(self._target, str):
                self._found = self._text.find(self._target, start)
            else:
                match = self._target.search(self._text, start)
                self._found = match.start() if match else -1
            self._from = start
        return self._found


class _Scanner:
    def __init__(self, line: str) -> None:
        self.line = line
        self.double = {"*": _Next(line, "**"), "_": _Next(line, "__")}
        self.star_closes = _Next(line, _STAR_CLOSES)
        self.underscore_closes = _Next(line, _UNDERSCORE_CLOSES)
        self.backtick = _Next(line, "`")
        self.bracket = _Next(line, "]")
        self.url_ends = _Next(line, _URL_ENDS)

    def token(self, p: int) -> tuple[int, str, str, str] | None:
        """(end, kind, text, url) of the markup at `p`, or None if none starts there."""
        line = self.line
        mark = line[p]
        if mark == "\\":
            if line[p + 1 : p + 2] in _ESCAPABLE:
                return p + 2, "plain", line[p + 1], ""
            return None
        if mark in "*_":
            if line.startswith(mark * 2, p) and (close := self.double[mark](p + 3)) != -1:
                return close + 2, "bold", line[p + 2 : close], ""
            return self._italic(p, mark)
        if mark == "`":
            close = self.backtick(p + 1)
            return (close + 1, "plain", line[p + 1 : close], "") if close > p + 1 else None
        return self._link(p)

    def _italic(self, p: int, mark: str) -> tuple[int, str, str, str] | None:
        line = self.line
        star = mark == "*"
        if not (_STAR_OPENS if star else _UNDERSCORE_OPENS).match(line, p):
            return None
        # The nearest closing mark after a character that is neither a space nor a backslash;
        # failing that, a one-character span ("*a*").
        close = (self.star_closes if star else self.underscore_closes)(p + 2)
        if close != -1:
            return close + 2, "italic", line[p + 1 : close + 1], ""
        if line.startswith(mark, p + 2) and (star or not _WORD.match(line, p + 3)):
            return p + 3, "italic", line[p + 1], ""
        return None

    def _link(self, p: int) -> tuple[int, str, str, str] | None:
        line = self.line
        close = self.bracket(p + 1)
        if close <= p + 1 or not line.startswith("(", close + 1):
            return None
        end = self.url_ends(close + 2)
        if end <= close + 2 or line[end] != ")":
            return None
        return end + 1, "link", line[p + 1 : close], line[close + 2 : end]


def parse_inline(line: str, *, bold: bool = False, italic: bool = False) -> tuple[Run, ...]:
    runs: list[Run] = []
    scanner = _Scanner(line)
    position = p = 0
    while (mark := _MARK.search(line, p)) is not None:
        p = mark.start()
        token = scanner.token(p)
        if token is None:
            p += 1
            continue
        end, kind, text, url = token
        if p > position:
            runs.append(Run(line[position:p], bold, italic))
        if kind == "bold":
            runs.extend(parse_inline(text, bold=True, italic=italic))
        elif kind == "italic":
            runs.extend(parse_inline(text, bold=bold, italic=True))
        elif kind == "link":
            label = _UNESCAPE.sub(r"\1", text)
            runs.append(Run(label if label == url else f"{label} ({url})", bold, italic))
        else:
            runs.append(Run(text, bold, italic))
        position = p = end
    if position < len(line):
        runs.append(Run(line[position:], bold, italic))
    return merge(runs)


def merge(runs: Sequence[Run]) -> tuple[Run, ...]:
    merged: list[Run] = []
    for run in runs:
        if not run.text:
            continue
        if merged and (merged[-1].bold, merged[-1].italic) == (run.bold, run.italic):
            merged[-1] = Run(merged[-1].text + run.text, run.bold, run.italic)
        else:
            merged.append(run)
    return tuple(merged)
