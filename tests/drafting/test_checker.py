"""The act checker's warnings (plume.drafting.checker) on parsed acts."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from plume.drafting.checker import CHECK_CODES, check_act
from plume.drafting.parsing import UNPARSED_ANSWER, parse_act
from tests.drafting.acts import (
    ARRETE,
    DELIBERATION,
    RECOURS_ARRETE,
    codes,
    replaced,
    without,
)
from tests.support.timing import assert_linear


def test_complete_acts_have_no_warnings() -> None:
    assert codes("arrete", ARRETE) == []
    assert codes("deliberation", DELIBERATION) == []


ARRETE_CASES = {
    "missing_visas": without(
        ARRETE,
        "Vu le Code général des collectivités territoriales, notamment ses articles L. 2212-1, "
        "L. 2212-2 et L. 2213-1 ;",
        "Vu le Code de la route, notamment son article R. 411-8 ;",
    ),
    "visas_without_cgct": without(
        ARRETE,
        "Vu le Code général des collectivités territoriales, notamment ses articles L. 2212-1, "
        "L. 2212-2 et L. 2213-1 ;",
    ),
    "missing_considerants": "\n".join(
        line for line in ARRETE.splitlines() if not line.startswith("Considérant")
    ),
    "missing_articles": "\n".join(
        line for line in ARRETE.splitlines() if not line.startswith("**Article")
    ),
    "articles_not_numbered": replaced(ARRETE, "**Article 2**", "**Article 4**"),
    "missing_execution_article": replaced(
        ARRETE,
        "La secrétaire de mairie, le commandant de la brigade de gendarmerie et toute autorité de "
        "police sont chargés, chacun en ce qui le concerne, de l'exécution du présent arrêté, qui",
        "Le présent arrêté",
    ),
    "missing_publication_mention": replaced(
        ARRETE, ", qui sera affiché en mairie et sur les lieux.", "."
    ),
    "missing_signature": without(ARRETE, "Fait à La Haye, le ____________\n\n"),
    "missing_appeal_mention": without(ARRETE, RECOURS_ARRETE),
    "appeal_mention_wrong_tribunal": replaced(
        ARRETE, "administratif de Rouen", "administratif de Caen"
    ),
}


DELIBERATION_CASES = {
    "missing_session": without(
        DELIBERATION,
        "Séance du 24 juin 2027\n\n",
        "Le conseil municipal de la commune de La Haye, régulièrement convoqué, s'est réuni le "
        "24 juin 2027 sous la présidence de Jean-Marc Gaillon, Maire.\n\n",
    ),
    "missing_visas": without(
        DELIBERATION,
        "Vu le Code général des collectivités territoriales, notamment son article L. 2121-29 ;",
    ),
    "visas_without_cgct": replaced(
        DELIBERATION,
        "Vu le Code général des collectivités territoriales, notamment son article L. 2121-29 ;",
        "Vu le Code de l'éducation, notamment son article R. 531-52 ;",
    ),
    "missing_considerants": "\n".join(
        line
        for line in DELIBERATION.splitlines()
        if not line.startswith(("Considérant", "### Exposé", "Le prix", "La commission"))
    ),
    "missing_articles": "\n".join(
        line for line in DELIBERATION.splitlines() if not line.startswith("**Article")
    ),
    "articles_not_numbered": replaced(DELIBERATION, "**Article 1er**", "**Article 2**"),
    "missing_vote": without(DELIBERATION, "Votes : pour 11, contre 0, abstentions 1.\n\n"),
    "missing_signature": without(DELIBERATION, "\nLe Maire,\nJean-Marc Gaillon\n"),
    "missing_appeal_mention": replaced(
        DELIBERATION, "dans un délai de deux mois à compter de sa publication", ""
    ),
    "appeal_mention_wrong_tribunal": replaced(
        DELIBERATION, "tribunal administratif de Rouen", "tribunal administratif compétent"
    ),
}


@pytest.mark.parametrize(("code", "text"), ARRETE_CASES.items(), ids=list(ARRETE_CASES))
def test_each_missing_part_of_an_arrete_gives_its_code(code: str, text: str) -> None:
    assert codes("arrete", text) == [code]


@pytest.mark.parametrize(("code", "text"), DELIBERATION_CASES.items(), ids=list(DELIBERATION_CASES))
def test_each_missing_part_of_a_deliberation_gives_its_code(code: str, text: str) -> None:
    assert codes("deliberation", text) == [code]


def test_a_deliberation_with_considerants_needs_no_expose() -> None:
    text = "\n".join(
        line
        for line in DELIBERATION.splitlines()
        if not line.startswith(("### Exposé", "Le prix", "La commission"))
    )
    assert codes("deliberation", text) == []


def test_the_appeal_mention_must_name_the_tenant_tribunal() -> None:
    text = ARRETE_CASES["appeal_mention_wrong_tribunal"]
    sections, _ = parse_act("arrete", text)
    [warning] = check_act("arrete", sections, text, "Rouen")
    assert warning.code == "appeal_mention_wrong_tribunal"
    assert "tribunal administratif de Caen" in warning.message
    assert "tribunal administratif de Rouen" in warning.message
    assert codes("arrete", text, tribunal="Caen") == []
    assert codes("arrete", ARRETE, tribunal="tribunal administratif de Rouen") == []


def test_tribunal_names_compare_without_accents_or_hyphens() -> None:
    text = replaced(ARRETE, "administratif de Rouen", "administratif de Chalons en Champagne")
    assert codes("arrete", text, tribunal="Châlons-en-Champagne") == []
    amiens = replaced(ARRETE, "administratif de Rouen", "administratif d'Amiens")
    assert codes("arrete", amiens, tribunal="Amiens") == []
    [warning] = check_act("arrete", parse_act("arrete", ARRETE)[0], ARRETE, "Amiens")
    assert "tribunal administratif d'Amiens" in warning.message


def test_an_incomplete_appeal_mention_says_what_is_missing() -> None:
    text = replaced(ARRETE, "dans un délai de deux mois", "")
    sections, _ = parse_act("arrete", text)
    [warning] = check_act("arrete", sections, text, "Rouen")
    assert warning.code == "missing_appeal_mention"
    assert "délai de deux mois" in warning.message


def test_appeal_mention_as_the_last_article_counts() -> None:
    text = replaced(
        without(ARRETE, RECOURS_ARRETE),
        "Fait à La Haye",
        f"**Article 4** : {RECOURS_ARRETE.strip('*')}\n\nFait à La Haye",
    )
    assert codes("arrete", text) == []


def test_signature_needs_place_date_and_signatory() -> None:
    only_place = without(ARRETE, "Le Maire,\nJean-Marc Gaillon\n")
    assert codes("arrete", only_place) == ["missing_signature"]
    one_line = replaced(
        ARRETE, "Fait à La Haye, le ____________\n\nLe Maire,\nJean-Marc Gaillon", "Le Maire"
    )
    assert codes("arrete", one_line) == ["missing_signature"]


def test_every_warning_has_a_known_code_and_a_french_message() -> None:
    assert len(set(CHECK_CODES)) == len(CHECK_CODES)
    texts = [
        ("arrete", "Bonjour"),
        ("deliberation", "Bonjour"),
        *(("arrete", t) for t in ARRETE_CASES.values()),
        *(("deliberation", t) for t in DELIBERATION_CASES.values()),
    ]
    seen = set()
    for kind, text in texts:
        sections, _ = parse_act(kind, text)
        for warning in check_act(kind, sections, text, "Rouen"):
            assert warning.code in CHECK_CODES
            assert warning.message.endswith((".", "»")), warning.message
            seen.add(warning.code)
    assert seen == set(CHECK_CODES)


# Each text as a function of a size; the sizes these tests once ran whole are 16 times the
# ones below, which the growth check reaches.
PATHOLOGICAL: list[tuple[str, Callable[[int], str], int]] = [
    ("fait", lambda n: "**ARRÊTE**\n\n**Article 1er** : x\n\nFait " + "à a " * n, 1_250),
    ("header", lambda n: "# Arrêté du maire de " + "La Haye de " * n, 1_250),
    ("tribunal", lambda n: "recours " + "tribunal administratif " * n, 300),
    ("decide", lambda n: "le conseil municipal " + "a " * n + " décide :", 3_000),
    ("charge", lambda n: "**ARRÊTE**\n\n**Article 1er** : " + "chargé " * n, 2_000),
    ("many-lines", lambda n: "Vu x\n" * (10 * n) + "**Article 1er** : y\n" * n, 125),
]


@pytest.mark.parametrize(
    ("name", "text", "size"), PATHOLOGICAL, ids=[name for name, _, _ in PATHOLOGICAL]
)
@pytest.mark.parametrize("kind", ["arrete", "deliberation"])
def test_pathological_texts_are_handled_quickly(
    kind: str, name: str, text: Callable[[int], str], size: int
) -> None:
    # Growth, not a wall-clock bound: "< 2 s" flaked on a loaded machine.
    def parse_and_check(value: str) -> None:
        sections, _ = parse_act(kind, value)
        check_act(kind, sections, value, "Rouen")

    assert_linear(parse_and_check, text, size)


def test_an_appeal_mention_without_the_word_recours_counts() -> None:
    text = replaced(
        ARRETE,
        RECOURS_ARRETE,
        "Le présent arrêté peut être contesté devant le tribunal administratif de Rouen dans un "
        "délai de deux mois à compter de sa publication.",
    )
    sections, _ = parse_act("arrete", text)
    assert sections.mentions[0].startswith("Le présent arrêté peut être contesté")
    assert codes("arrete", text) == []


@pytest.mark.parametrize("kind", ["arrete", "deliberation"])
def test_mangled_acts_never_raise(kind: str) -> None:
    rng = random.Random(4)
    source = (ARRETE if kind == "arrete" else DELIBERATION).splitlines()
    for _ in range(300):
        lines = [line for line in source if rng.random() > 0.2]
        if rng.random() < 0.3:
            rng.shuffle(lines)
        lines = [
            line[: rng.randrange(len(line) + 1)] if rng.random() < 0.1 else line for line in lines
        ]
        text = "\n".join(lines)
        sections, warnings = parse_act(kind, text)
        # parse_act swallows its own bugs: an article still in the text must still be found.
        if any(line.startswith("**Article 2** : ") for line in lines):
            assert sections.articles
        for warning in check_act(kind, sections, text, "Rouen") + warnings:
            assert warning.code in (*CHECK_CODES, UNPARSED_ANSWER)
