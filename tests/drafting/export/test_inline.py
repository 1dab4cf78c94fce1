"""The export's reading of inline Markdown and headings: what the former patterns read, in
linear time on the lines that made them backtrack (review M-5)."""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from plume.drafting.export import ExportableDraft, ExportFormat, export
from plume.drafting.export.content import content_of, document_blocks, heading
from plume.drafting.export.inline import Run, merge, parse_inline
from tests.support.timing import assert_linear

# The review's line: 24,000 characters of unclosed emphasis (seconds before).
LONG_LINE = "*a " * 8_000

_FORMER_INLINE = re.compile(
    r"\\(?P<escaped>[\\`*_{}\[\]()#+\-.!>|])"
    r"|\*\*(?P<bold>.+?)\*\*"
    r"|__(?P<bold2>.+?)__"
    r"|\*(?P<italic>[^\s*](?:.*?[^\s\\])?)\*"
    r"|(?<!\w)_(?P<italic2>[^\s_](?:.*?[^\s\\])?)_(?!\w)"
    r"|`(?P<code>[^`]+)`"
    r"|\[(?P<label>[^\]]+)\]\((?P<url>[^)\s]+)\)"
)
_FORMER_UNESCAPE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!>|])")
_FORMER_HEADING = re.compile(r"^(#{1,6})\s+(.*?)(?:\s+#+)?\s*$")


def former_inline(line: str, *, bold: bool = False, italic: bool = False) -> tuple[Run, ...]:
    """The export's inline reading before this change, kept as the reference."""
    runs: list[Run] = []
    position = 0
    for match in _FORMER_INLINE.finditer(line):
        if match.start() > position:
            runs.append(Run(line[position : match.start()], bold, italic))
        position = match.end()
        groups = match.groupdict()
        if groups["escaped"] is not None:
            runs.append(Run(groups["escaped"], bold, italic))
        elif groups["bold"] is not None or groups["bold2"] is not None:
            inner = groups["bold"] if groups["bold"] is not None else groups["bold2"]
            runs.extend(former_inline(inner, bold=True, italic=italic))
        elif groups["italic"] is not None or groups["italic2"] is not None:
            inner = groups["italic"] if groups["italic"] is not None else groups["italic2"]
            runs.extend(former_inline(inner, bold=bold, italic=True))
        elif groups["code"] is not None:
            runs.append(Run(groups["code"], bold, italic))
        else:
            label, url = _FORMER_UNESCAPE.sub(r"\1", groups["label"]), groups["url"]
            runs.append(Run(label if label == url else f"{label} ({url})", bold, italic))
    if position < len(line):
        runs.append(Run(line[position:], bold, italic))
    return merge(runs)


@pytest.mark.parametrize(
    ("line", "runs"),
    [
        ("Le **maire** arrête", (Run("Le "), Run("maire", bold=True), Run(" arrête"))),
        ("*Le présent arrêté*", (Run("Le présent arrêté", italic=True),)),
        ("un _mot_ et snake_case", (Run("un "), Run("mot", italic=True), Run(" et snake_case"))),
        (
            "**gras** et *italique*",
            (Run("gras", bold=True), Run(" et "), Run("italique", False, True)),
        ),
        ("`code` et \\*étoile\\*", (Run("code et *étoile*"),)),
        ("[Légifrance](https://x.fr)", (Run("Légifrance (https://x.fr)"),)),
        ("[https://x.fr](https://x.fr)", (Run("https://x.fr"),)),
        ("*a *a *a", (Run("*a *a *a"),)),
    ],
)
def test_inline_markup_becomes_styled_runs(line: str, runs: tuple[Run, ...]) -> None:
    assert parse_inline(line) == runs


def test_inline_markup_reads_as_the_former_pattern_read_it() -> None:
    rng = random.Random(11)
    alphabet = [*"*_`[]()\\ ab#é1-.", "\u2003", "**", "__", "](", "\t"]
    for _ in range(20_000):
        line = "".join(rng.choice(alphabet) for _ in range(rng.randrange(18)))
        assert parse_inline(line) == former_inline(line), repr(line)


def test_headings_read_as_the_former_pattern_read_them() -> None:
    rng = random.Random(12)
    alphabet = ["#", "#", " ", "\t", "\u2003", "a", "b", "\x0b"]
    for _ in range(20_000):
        line = "".join(rng.choice(alphabet) for _ in range(rng.randrange(14)))
        former = _FORMER_HEADING.match(line)
        expected = (len(former.group(1)), former.group(2)) if former else None
        assert heading(line) == expected, repr(line)


# Each kind of line that made the former patterns read the rest of the line again and again.
LINES: list[tuple[str, Callable[[int], str]]] = [
    ("italic", lambda n: "*a " * n),
    ("italic-underscore", lambda n: "_a " * n),
    ("bold", lambda n: "**a " * n),
    ("bold-underscore", lambda n: "__a " * n),
    ("code", lambda n: "`" + "a" * n),
    ("brackets", lambda n: "[" * n),
    ("links", lambda n: "[a](b" * n),
    ("escapes", lambda n: "\\" * n),
    ("heading", lambda n: "# a" + " " * n + "#" * n + " " * n + "x"),
]


@pytest.mark.parametrize(("name", "line"), LINES, ids=[name for name, _ in LINES])
def test_a_long_line_is_read_in_linear_time(name: str, line: Callable[[int], str]) -> None:
    # The Markdown read into blocks and runs, as the docx and odt exports both do.
    def blocks(markdown: str) -> object:
        return document_blocks(content_of(_draft(markdown)))

    assert_linear(blocks, line, 1_000)


@pytest.mark.parametrize("format", ["md", "docx", "odt"])
def test_the_review_s_line_exports_at_once(format: ExportFormat) -> None:
    started = time.perf_counter()
    data, _, _ = export(_draft(LONG_LINE), format)
    # Generous: it took seconds before, milliseconds now.
    assert time.perf_counter() - started < 2
    assert data


def _draft(text: str) -> ExportableDraft:
    return ExportableDraft(
        id="00000000-0000-0000-0000-000000000001",
        kind="courrier",
        title="Courrier",
        text=text,
        sections=None,
        ai_notice="Texte rédigé avec l'aide d'une IA.",
        status="draft",
        commune_name="Saint-Aubin-des-Plumes",
        created_at=datetime(2027, 3, 1, tzinfo=UTC),
    )
