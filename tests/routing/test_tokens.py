"""Token counts: the tokenizer's own count for ordinary text, in linear time for any text
(tiktoken is quadratic in the length of a run it cannot cut: 40,000 "中" took 18 s)."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from plume.routing.tokens import _encoding, count_each, count_text_tokens
from tests.drafting.helpers import EXAMPLES, french_source
from tests.support.timing import assert_linear


def whole(text: str) -> int:
    """The tokenizer's count for the text in one piece."""
    return len(_encoding().encode(text, disallowed_special=()))


def test_ordinary_text_counts_as_the_tokenizer_counts_it() -> None:
    texts = [french_source(60_000), *(str(request) for request in EXAMPLES.values())]
    texts.append("Ligne\r\nautre ligne\n\n\tindentée  \u00a0 « citée » l'an 2027 — 1 500,00 €…")
    for text in texts:
        assert count_text_tokens(text) == whole(text)


def test_mixed_text_counts_as_the_tokenizer_counts_it() -> None:
    rng = random.Random(2)
    alphabet = [" ", "  ", "\n", "\r\n", "\t", "a", "l'", "'s", "Été", ".", "…", "12", "中", "😀"]
    for _ in range(300):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 3_000)))
        assert count_text_tokens(text) == whole(text), repr(text[:80])


def test_a_long_source_is_counted_paragraph_by_paragraph_in_its_order() -> None:
    # Long enough to be counted on two threads; a long run among the paragraphs.
    paragraphs = french_source(400_000, seed=5).split("\n\n")
    paragraphs.insert(len(paragraphs) // 3, "中" * 3_000)
    paragraphs.append("")
    counts = count_each(paragraphs)
    assert counts == [count_text_tokens(paragraph) for paragraph in paragraphs]
    assert len(set(counts)) > 20  # in another order, they would not match


RUNS: list[tuple[str, Callable[[int], str]]] = [
    ("letters", lambda n: "a" * n),
    ("ideograms", lambda n: "中" * n),
    ("accents", lambda n: "é" * n),
    ("spaces", lambda n: " " * n),
    ("punctuation", lambda n: "!" * n),
    ("emoji", lambda n: "😀" * n),
]


@pytest.mark.parametrize(("name", "run"), RUNS, ids=[name for name, _ in RUNS])
def test_a_long_run_is_counted_in_linear_time(name: str, run: Callable[[int], str]) -> None:
    assert_linear(count_text_tokens, run, 5_000)


def test_a_long_run_counts_about_what_the_tokenizer_counts() -> None:
    # Counted slice by slice: off by at most a token a slice of 128 characters.
    for text in ("a" * 4_000, "中" * 4_000, " " * 4_000, "!" * 4_000):
        assert abs(count_text_tokens(text) - whole(text)) <= len(text) // 128 + 1
