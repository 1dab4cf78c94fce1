"""The act parser on adversarial answers: every line is read in linear time, and the
rewritten heading reading gives what the former pattern gave (review M-5)."""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable

import pytest

from plume.drafting.parsing import parse_act
from plume.drafting.parsing.markdown import heading_text
from tests.support.timing import assert_linear

# The 4.8 KB provision of the review: a heading line of spaces and "#" (11 s before).
PROVISION = "Texte\n# a" + " " * 1600 + "#" * 1600 + " " * 1600 + "x"

_FORMER_HEADING = re.compile(r"^(#{1,6})\s*(.*?)\s*#*\s*$")


def act_around(line: str) -> str:
    return f"# Arrêté du maire\n\n**ARRÊTE**\n\n**Article 1er** : début\n{line}\n"


def act_with(line: str) -> str:
    """The line as the act's heading, in its header, and in its article: where every class
    of line is tried on it."""
    return f"# {line}\n\n{line}\n\n{act_around(line)}"


# A line builder for each kind of run that made a pattern backtrack: (name, line of size n).
RUNS: list[tuple[str, Callable[[int], str]]] = [
    ("heading-spaces", lambda n: "# a" + " " * n + "x"),
    ("heading-spaces-hashes", lambda n: "# a" + " " * n + "#" * n + " " * n + "x"),
    ("heading-em-spaces", lambda n: "# a" + "\u2003" * n + "x"),
    ("heading-hashes", lambda n: "#" * n + " x"),
    ("html-tags", lambda n: "<b" * n),
    ("visa-spaces", lambda n: "Vu" + "\u2003" * n + ":" + "\t" * n + "x"),
    ("vote", lambda n: "pour" + "\u2003" * n + ":" + "\u2003" * n + "x"),
    ("dispositif", lambda n: "ARRETE" + "\u2003" * n + "x"),
    ("header-colon", lambda n: "Délibération" + "\u2003" * n + "x"),
    ("signatory", lambda n: "le maire" + "\u2003" * n + "," + "\u2003" * n + ";"),
    ("emphasis", lambda n: "*a " * n),
    ("brackets", lambda n: "[" * n),
]


@pytest.mark.parametrize("kind", ["arrete", "deliberation"])
@pytest.mark.parametrize(("name", "line"), RUNS, ids=[name for name, _ in RUNS])
def test_a_long_line_is_parsed_in_linear_time(
    kind: str, name: str, line: Callable[[int], str]
) -> None:
    assert_linear(lambda text: parse_act(kind, text), lambda n: act_with(line(n)), 1_000)


@pytest.mark.parametrize("kind", ["arrete", "deliberation"])
def test_an_article_of_many_lines_is_gathered_in_linear_time(kind: str) -> None:
    # Each line used to be added to a string copied whole every time.
    def act(n: int) -> str:
        return act_around(("ligne " * 33 + "\n") * n)

    assert_linear(lambda text: parse_act(kind, text), act, 1_000)
    sections, _ = parse_act(kind, act_around("un\ndeux\ntrois"))
    assert sections.articles[0].text == "début\nun\ndeux\ntrois"


def test_the_review_s_heading_line_is_parsed_at_once() -> None:
    started = time.perf_counter()
    sections, _ = parse_act("arrete", act_around(PROVISION))
    # Generous: it took 11 s before, it takes milliseconds now.
    assert time.perf_counter() - started < 2
    assert sections.articles[0].text.startswith("début\nTexte\na")


@pytest.mark.parametrize(
    ("line", "text"),
    [
        ("# Arrêté du maire", "Arrêté du maire"),
        ("## Objet : stationnement ##", "Objet : stationnement"),
        ("###Titre###", "Titre"),
        ("####### sept", "# sept"),
        ("# C#", "C"),
        ("#", ""),
        ("# " + "a" + " " * 50 + "#" * 50, "a"),
        ("Pas un titre", None),
    ],
)
def test_a_heading_s_text(line: str, text: str | None) -> None:
    assert heading_text(line) == text


def test_headings_read_as_the_former_pattern_read_them() -> None:
    rng = random.Random(5)
    alphabet = ["#", "#", " ", "\t", "\u2003", "\u00a0", "a", "b", "\x0b", "\x1c"]
    for _ in range(20_000):
        line = "".join(rng.choice(alphabet) for _ in range(rng.randrange(14)))
        former = _FORMER_HEADING.match(line)
        assert heading_text(line) == (former.group(2) if former else None), repr(line)


def test_runs_of_any_whitespace_read_as_one_space() -> None:
    text = act_around("Le\u2003\u2003stationnement\x0best\u3000interdit.")
    sections, _ = parse_act("arrete", text)
    assert sections.articles[0].text == "début\nLe stationnement est interdit."
