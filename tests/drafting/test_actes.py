"""The ACTES table is whole and the example acts (docs/examples/requests) get the right matière."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from plume.drafting import actes
from plume.drafting.actes import (
    classify,
    entries,
    is_known,
    label_for,
    merge_suggestion,
    normalize,
)
from plume.drafting.document import ActeNature

# The project's own example requests, part of the repository: a missing folder fails.
EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples" / "requests"

EXPECTED = {
    # Traffic and parking police: the maire's own power (CGCT L. 2213-1 and L. 2213-2).
    "arrete-course-cycliste": "6.1",
    "arrete-marche-hebdomadaire": "6.1",
    "arrete-travaux-pont": "6.1",
    # A permis de stationnement authorises a private occupation of the public domain.
    "arrete-terrasse-cafe": "3.5",
    # Non-permanent jobs for a seasonal increase in activity are filled by contractuels.
    "deliberation-emploi-saisonnier": "4.2",
    "deliberation-subvention-association-sportive": "7.5",
    # Prices of a public service: no sous-matière of their own, so Finances locales / Divers.
    "deliberation-tarifs-concessions-cimetiere": "7.10",
}


def _codes() -> list[str]:
    return [entry.code for entry in entries()]


def test_nine_matieres() -> None:
    matieres = [entry for entry in entries() if entry.parent is None]
    assert [entry.code for entry in matieres] == [str(number) for number in range(1, 10)]
    assert label_for("6") == "Libertés publiques et pouvoirs de police"


def test_codes_are_unique_and_well_formed() -> None:
    codes = _codes()
    assert len(codes) == len(set(codes))
    assert all(re.fullmatch(r"[1-9](\.[1-9][0-9]?)?", code) for code in codes)


def test_every_sous_matiere_has_its_matiere_and_every_matiere_has_sous_matieres() -> None:
    codes = set(_codes())
    parents = {entry.parent for entry in entries() if entry.parent is not None}
    assert parents <= codes
    assert parents == {str(number) for number in range(1, 10)}


def test_labels_are_present_and_trimmed() -> None:
    for entry in entries():
        assert entry.label
        assert entry.label == entry.label.strip()


def test_known_sous_matieres() -> None:
    assert len([entry for entry in entries() if entry.parent is not None]) == 57
    assert label_for("1.1") == "Marchés publics"
    assert label_for("3.5") == "Autres actes de gestion du domaine public"
    assert label_for("4.1") == "Personnel titulaires et stagiaires de la F.P.T."
    assert label_for("4.2") == "Personnel contractuel"
    assert label_for("6.1") == "Police municipale"
    assert label_for("7.1") == "Décisions budgétaires"
    assert label_for("7.5") == "Subventions"
    assert label_for("7.10") == "Divers"
    assert label_for("9.1") == "Autres domaines de compétences des communes"
    assert label_for(" 6.1 ") == "Police municipale"
    assert is_known("9.4")
    assert not is_known("7.11")
    assert not is_known("10")
    assert label_for("") is None


def test_every_rule_points_into_the_table() -> None:
    rules = actes._LEGAL_NATURE_RULES + actes._THEME_RULES
    assert all(is_known(rule.code) and "." in rule.code for rule in rules)
    assert is_known(actes.FALLBACK_CODE)


def test_normalize_folds_accents_case_ligatures_and_plurals() -> None:
    assert normalize("Délégation de SERVICE public") == "delegation de service public"
    assert normalize("Vœux") == normalize("voeu")
    assert normalize("Tarifs") == normalize("tarif")
    assert normalize("L. 2213-1,") == "l 2213 1"
    assert normalize("plus") != normalize("PLU")


def _example_acts() -> list[tuple[str, dict[str, object]]]:
    requests = (
        (path.stem, json.loads(path.read_text(encoding="utf-8")))
        for path in EXAMPLES.glob("*.json")
    )
    return sorted(
        (name, body) for name, body in requests if body["kind"] in {"arrete", "deliberation"}
    )


def test_the_examples_have_the_expected_acts() -> None:
    assert EXAMPLES.is_dir(), EXAMPLES
    assert {name for name, _ in _example_acts()} == set(EXPECTED)


@pytest.mark.parametrize(("name", "code"), sorted(EXPECTED.items()))
def test_example_act_is_classified(name: str, code: str) -> None:
    body = json.loads((EXAMPLES / f"{name}.json").read_text(encoding="utf-8"))
    nature = classify(body["kind"], body)
    assert (nature.code, nature.label) == (code, label_for(code))


@pytest.mark.parametrize(
    ("kind", "fields", "code"),
    [
        (
            "deliberation",
            {
                "subject": "Création d'un emploi non permanent d'agent contractuel",
                "context": "Accroissement saisonnier d'activité au camping municipal.",
                "decisions": ["Créer un emploi d'adjoint technique du 1er juillet au 31 août."],
            },
            "4.2",
        ),
        (
            "deliberation",
            {"subject": "Suppression d'un poste au tableau des effectifs", "decisions": []},
            "4.1",
        ),
        ("deliberation", {"subject": "Vote du budget primitif 2027", "decisions": []}, "7.1"),
        ("deliberation", {"subject": "Décision modificative n° 2", "decisions": []}, "7.1"),
        (
            "deliberation",
            {"subject": "Prescription de la révision du plan local d'urbanisme", "decisions": []},
            "2.1",
        ),
        (
            "deliberation",
            {"subject": "Attribution du marché de travaux de la salle des fêtes", "decisions": []},
            "1.1",
        ),
        (
            "deliberation",
            {
                "subject": "Délégations consenties au maire",
                "context": "Article L. 2122-22 du code général des collectivités territoriales.",
                "decisions": [],
            },
            "5.4",
        ),
        (
            "arrete",
            {"subject": "Règlement du cimetière communal", "provisions": ["Les inhumations…"]},
            "6.1",
        ),
        (
            "arrete",
            {"subject": "Permis de stationnement pour une benne", "provisions": []},
            "3.5",
        ),
        (
            "deliberation",
            {"subject": "Tarifs de location de la salle des fêtes", "decisions": []},
            "7.10",
        ),
        (
            "deliberation",
            {"subject": "Subvention à la coopérative scolaire de l'école", "decisions": []},
            "7.5",
        ),
        ("deliberation", {"subject": "Motion pour le maintien de la classe"}, "9.4"),
        # Traffic is policed by arrêté: a délibération about it is a voirie matter.
        ("deliberation", {"subject": "Plan de circulation et stationnement du bourg"}, "8.3"),
        ("deliberation", {"subject": "Jumelage avec une commune allemande"}, "9.1"),
        ("arrete", {"subject": "Objet sans mot-clé reconnaissable"}, "9.1"),
    ],
)
def test_classify_rules(kind: str, fields: dict[str, object], code: str) -> None:
    assert classify(kind, fields).code == code


def test_classify_refuses_documents_that_are_not_acts() -> None:
    with pytest.raises(ValueError, match="courrier"):
        classify("courrier", {"subject": "Réponse à M. Dupont"})


def test_classify_ignores_who_signs_and_when() -> None:
    fields: dict[str, object] = {
        "subject": "Objet sans mot-clé reconnaissable",
        "signatory": {"name": "Jean Subvention", "title": "Maire"},
        "session_date": "2027-06-24",
    }
    assert classify("deliberation", fields).code == "9.1"


RULE_BASED = ActeNature(code="7.10", label="Divers")


@pytest.mark.parametrize(
    ("suggested", "expected"),
    [
        ("7.5", ActeNature(code="7.5", label="Subventions")),
        (" 6.1 Police municipale", ActeNature(code="6.1", label="Police municipale")),
        ("6.1 - Circulation", ActeNature(code="6.1", label="Police municipale")),
        ("7.10", RULE_BASED),
        ("3.5.2", ActeNature(code="3.5", label="Autres actes de gestion du domaine public")),
        (None, RULE_BASED),
        ("", RULE_BASED),
        ("7.11", RULE_BASED),
        ("6", RULE_BASED),
        ("police", RULE_BASED),
        ("12.1", RULE_BASED),
    ],
)
def test_merge_suggestion(suggested: str | None, expected: ActeNature) -> None:
    assert merge_suggestion(RULE_BASED, suggested) == expected


def test_merge_suggestion_takes_the_label_from_the_table() -> None:
    merged = merge_suggestion(RULE_BASED, "7.5")
    assert merged.label == label_for("7.5")
