"""Finishing an answer: its "Nature ACTES" line taken out as the former pattern took it, in
linear time however many blank lines the answer holds."""

from __future__ import annotations

import random
import re
from collections.abc import Callable

import pytest

from plume.drafting.document import TenantIdentity
from plume.drafting.finishing import finish_document
from tests.drafting.acts import ARRETE
from tests.support.timing import assert_linear

IDENTITY = TenantIdentity(commune_name="Saint-Aubin-des-Plumes")

_FORMER_ACTES_LINE = re.compile(
    r"^\s*\**Nature ACTES\**\s*:\s*\**\s*([0-9]{1,2}(?:\.[0-9]{1,2})*)\**.*$",
    re.MULTILINE | re.IGNORECASE,
)


def finished(text: str, kind: str = "courrier") -> tuple[str, str | None]:
    document = finish_document(kind, text, {"subject": "Objet"}, IDENTITY, offline=False)
    nature = document.acte_nature.code if document.acte_nature else None
    return document.text, nature


def test_the_actes_line_is_taken_out_and_its_code_used() -> None:
    text, nature = finished(ARRETE + "\n\n**Nature ACTES** : 6.1\n", kind="arrete")
    assert "Nature ACTES" not in text
    assert text == ARRETE.strip() + "\n"
    assert nature == "6.1"


def test_actes_lines_go_as_the_former_pattern_took_them() -> None:
    rng = random.Random(8)
    pieces = ["\n", "\n\n", " ", "\t", "\r", "\u2003", "x", ":", "*", "6.1", "Nature ACTES"]
    pieces += ["Nature ACTES : 7.5", "**Nature ACTES** : 3.5", "nature actes :\n1"]
    for _ in range(5_000):
        raw = "".join(rng.choice(pieces) for _ in range(rng.randrange(16)))
        text, _ = finished(raw)
        assert text == _FORMER_ACTES_LINE.sub("", raw).strip() + "\n", repr(raw)


ANSWERS: list[tuple[str, Callable[[int], str]]] = [
    ("blank-lines", lambda n: "Texte" + "\n" * n + "fin"),
    ("blank-lines-with-spaces", lambda n: "Texte" + "\n \t" * n + "fin"),
    ("spaces-after-label", lambda n: "Nature ACTES :" + " " * n + "x"),
    ("many-actes-lines", lambda n: "Nature ACTES : 1.1\n\n" * n),
]


@pytest.mark.parametrize(("name", "answer"), ANSWERS, ids=[name for name, _ in ANSWERS])
@pytest.mark.parametrize("kind", ["courrier", "arrete", "deliberation"])
def test_an_answer_is_finished_in_linear_time(
    kind: str, name: str, answer: Callable[[int], str]
) -> None:
    assert_linear(lambda text: finished(text, kind), answer, 2_000)
