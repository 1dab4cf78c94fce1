"""Each legal check on an act that passes it and one that fails it (plume.drafting.checker)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from plume.drafting.checker import LEGAL_CODES, SOURCES
from tests.drafting.checker.acts import (
    ARRETE,
    ARRETE_FIELDS,
    DELIBERATION,
    DELIBERATION_FIELDS,
    check,
    legal_codes,
    replaced,
)
from tests.support.french import looks_french
from tests.support.timing import assert_linear

COUNTS = (
    "Conseillers en exercice : 15. Présents : 11. Représentés : 1 (Mme Durand a donné pouvoir "
    "à M. Leroy). Votants : 12."
)
SUBSIDY_VISAS = (
    "Vu le Code général des collectivités territoriales, notamment ses articles L. 2121-29 et "
    "L. 2311-7 ;\n\nVu la loi n° 2000-321 du 12 avril 2000, notamment ses articles 10 et 10-1 ;"
    "\n\nVu le contrat d'engagement républicain souscrit par le Comité des fêtes ;\n\n"
)
POST_VISAS = (
    "Vu le Code général des collectivités territoriales, notamment son article L. 2121-29 ;\n\n"
    "Vu le Code général de la fonction publique, notamment son article L. 313-1 ;"
    "\n\nVu le tableau des emplois de la commune ;\n\n"
)


def _with_visas(text: str, visas: str) -> str:
    return replaced(
        replaced(
            text,
            "Vu le Code général des collectivités territoriales, notamment son article L. 2121-29 ;"
            "\n\n",
            "",
        ),
        "Vu le Code de l'éducation",
        visas + "Vu le Code de l'éducation",
    )


SUBSIDY_DELIBERATION = _with_visas(DELIBERATION, SUBSIDY_VISAS)
POST_DELIBERATION = _with_visas(DELIBERATION, POST_VISAS)
SUBSIDY_WITHOUT_INTEREST = replaced(
    SUBSIDY_DELIBERATION,
    "Votes :",
    "M. Leroy, président du Comité des fêtes, n'a pas pris part au vote.\n\nVotes :",
)
SUBSIDY = {
    **DELIBERATION_FIELDS,
    "subject": "Subvention au Comité des fêtes",
    "decisions": ["Attribuer une subvention de 1 500 € au Comité des fêtes."],
}
POST = {
    **DELIBERATION_FIELDS,
    "subject": "Création d'un poste d'adjoint technique",
    "decisions": ["Créer un emploi permanent d'adjoint technique à temps complet."],
}
POST_ARTICLE = (
    "De créer un emploi permanent d'agent des espaces verts à temps complet, au grade "
    "d'adjoint technique territorial, à compter du 1er septembre 2027."
)
CONTRACT_ARTICLE = (
    "De créer un emploi permanent de chargé de l'urbanisme à temps complet, au grade "
    "d'attaché territorial ; en raison de la nature des fonctions (instruction des "
    "autorisations d'urbanisme), il pourra être pourvu par un contractuel sur le fondement de "
    "l'article L. 332-8 du CGFP, de niveau de diplôme bac + 3, rémunéré sur la grille "
    "indiciaire du grade."
)
PERMISSION = {
    **ARRETE_FIELDS,
    "subject": "Permission de voirie pour un échafaudage",
    "context": "M. Julien Marchand a demandé à installer un échafaudage sur le trottoir.",
    "provisions": ["M. Julien Marchand est autorisé à installer un échafaudage."],
}
PERMISSION_ARRETE = replaced(
    replaced(
        replaced(ARRETE, "L. 2212-2 et L. 2213-1 ;", "L. 2212-2 et L. 2213-6 ;"),
        "Vu le Code de la route, notamment ses articles L. 325-1, R. 411-8 et R. 417-10 ;",
        "Vu le Code général de la propriété des personnes publiques, notamment ses articles "
        "L. 2122-1 à L. 2122-3 et L. 2125-1 ;",
    ),
    "qui sera publié sous forme électronique sur le site internet de la commune",
    "qui sera notifié à M. Julien Marchand",
)
BATHING = {
    **ARRETE_FIELDS,
    "subject": "Interdiction de la baignade dans l'étang communal",
    "provisions": ["La baignade est interdite dans l'étang communal du 1er juin au 30 septembre."],
}
COURRIER_FIELDS = {
    "kind": "courrier",
    "subject": "Demande de DETR",
    "points": ["Joindre la délibération du 12 mars 2027."],
}
COURRIER = """Monsieur le Préfet,

J'ai l'honneur de solliciter une subvention au titre de la DETR pour la rénovation de la salle.

{point}

Je vous prie d'agréer, Monsieur le Préfet, l'expression de ma haute considération.
"""
NOISE_FIELDS = {
    "kind": "courrier",
    "subject": "Réponse à une plainte pour les aboiements d'un chenil",
    "recipient": {"name": "Mme Sophie Lefebvre"},
    "points": ["J'ai rencontré le propriétaire des chiens."],
}
NOISE = """Madame,

J'ai bien reçu votre courrier sur les aboiements du chenil voisin. J'ai rencontré son
propriétaire ; {kennel}

Je vous prie de croire, Madame, à l'assurance de mes sentiments les meilleurs.
"""
BULLETIN_FIELDS = {"kind": "bulletin_article", "subject": "Repair café", "length_words": 100}


def _bulletin(words: int) -> str:
    return "# Repair café\n\n" + " ".join(["réparer"] * (words - 2)) + "\n"


# code -> (kind, failing text, passing text, fields, settings); fields None = the act's own.
Case = tuple[str, str, str, dict[str, Any] | None, dict[str, Any]]
CASES: dict[str, Case] = {
    "missing_act_number": (
        "arrete",
        replaced(ARRETE, "n° 2027-014", "n° [À COMPLÉTER]"),
        ARRETE,
        None,
        {},
    ),
    "missing_session_counts": (
        "deliberation",
        replaced(DELIBERATION, COUNTS, "Étaient présents : les conseillers municipaux."),
        DELIBERATION,
        None,
        {},
    ),
    "convocation_too_late": (
        "deliberation",
        replaced(DELIBERATION, "convoqué le 17 juin 2027", "convoqué le 22 juin 2027"),
        DELIBERATION,
        None,
        {},
    ),
    "missing_session_secretary": (
        "deliberation",
        replaced(
            replaced(DELIBERATION, "Secrétaire de séance : Mme Claire Petit.", ""),
            " — Le secrétaire de séance, Claire Petit",
            "",
        ),
        DELIBERATION,
        None,
        {},
    ),
    "missing_vote_mode": (
        "deliberation",
        replaced(DELIBERATION, ", à main levée,", ""),
        DELIBERATION,
        None,
        {},
    ),
    "duplicate_visa": (
        "deliberation",
        replaced(
            DELIBERATION,
            "Considérant l'exposé",
            "Vu le CGCT, notamment son article L. 2331-2 ;\n\nConsidérant l'exposé",
        ),
        DELIBERATION,
        None,
        {},
    ),
    "visa_order": (
        "arrete",
        replaced(
            ARRETE,
            "Vu le Code de la route",
            "Vu l'arrêté préfectoral du 3 mars 2020 ;\n\nVu le Code de la route",
        ),
        ARRETE,
        None,
        {},
    ),
    "legal_basis_suspect": (
        "deliberation",
        replaced(
            DELIBERATION,
            "Vu le Code de l'éducation, notamment ses articles L. 131-13, R. 531-52 et R. 531-53 ;",
            "",
        ),
        DELIBERATION,
        None,
        {},
    ),
    "broken_text": (
        "arrete",
        replaced(
            ARRETE,
            "Considérant qu'il appartient",
            "Considérant que M ;\n\nConsidérant qu'il appartient",
        ),
        ARRETE,
        None,
        {},
    ),
    "personal_data_in_act": (
        "arrete",
        replaced(ARRETE, "du 2 mai 2027 ;", "du 2 mai 2027 (tél. 06 12 34 56 78) ;"),
        ARRETE,
        None,
        {},
    ),
    "mixed_article_form": (
        "deliberation",
        replaced(DELIBERATION, "De dire que", "Dire que"),
        DELIBERATION,
        None,
        {},
    ),
    "open_ended_measure": (
        "arrete",
        replaced(
            ARRETE,
            "Tout véhicule en stationnement gênant sera mis en fourrière.",
            "La rue du Stade est fermée à la circulation jusqu'à la fin des travaux.",
        ),
        ARRETE,
        None,
        {},
    ),
    "employment_mentions": (
        "deliberation",
        replaced(POST_DELIBERATION, "De fixer le prix du repas", "De créer un emploi permanent"),
        replaced(
            POST_DELIBERATION,
            "De fixer le prix du repas selon trois tranches de quotient familial : 1 €, 2,50 € "
            "et 3,60 €.",
            POST_ARTICLE,
        ),
        POST,
        {},
    ),
    "councillor_interest": (
        "deliberation",
        SUBSIDY_DELIBERATION,
        replaced(
            SUBSIDY_DELIBERATION,
            "Votes :",
            "M. Leroy, président du Comité des fêtes, n'a pas pris part au vote.\n\nVotes :",
        ),
        SUBSIDY,
        {},
    ),
    "subsidy_agreement": (
        "deliberation",
        replaced(
            SUBSIDY_DELIBERATION,
            "De dire que",
            "D'attribuer une subvention de 25 000 € au Comité des fêtes. M. Leroy n'a pas pris "
            "part au vote.\n\n**Article 3** : De dire que",
        ),
        replaced(
            SUBSIDY_DELIBERATION,
            "De dire que",
            "D'attribuer une subvention de 25 000 € au Comité des fêtes et d'approuver la "
            "convention jointe. M. Leroy n'a pas pris part au vote.\n\n**Article 3** : De dire "
            "que",
        ),
        SUBSIDY,
        {},
    ),
    "publicity_mode": (
        "arrete",
        replaced(
            ARRETE,
            "publié sous forme électronique sur le site internet de la commune",
            "publié et affiché en mairie",
        ),
        ARRETE,
        None,
        {},
    ),
    "transmission_required": (
        "deliberation",
        replaced(DELIBERATION, "Transmis en préfecture le ____________ ; ", ""),
        DELIBERATION,
        None,
        {},
    ),
    "missing_executory_mention": (
        "arrete",
        replaced(ARRETE, "Acte certifié exécutoire, publié le ____________.", ""),
        ARRETE,
        None,
        {},
    ),
    "obsolete_title": (
        "arrete",
        replaced(ARRETE, "La secrétaire générale de mairie", "La secrétaire de mairie"),
        ARRETE,
        None,
        {},
    ),
    "courrier_instruction_left": (
        "courrier",
        COURRIER.format(point="Joindre la délibération du 12 mars 2027."),
        COURRIER.format(point="Vous trouverez ci-joint la délibération du 12 mars 2027."),
        COURRIER_FIELDS,
        {},
    ),
    "republican_commitment": (
        "deliberation",
        replaced(
            SUBSIDY_WITHOUT_INTEREST,
            "Vu le contrat d'engagement républicain souscrit par le Comité des fêtes ;\n\n",
            "",
        ),
        SUBSIDY_WITHOUT_INTEREST,
        SUBSIDY,
        {},
    ),
    "canteen_tranches": (
        "deliberation",
        replaced(
            DELIBERATION,
            "selon trois tranches de quotient familial : 1 €, 2,50 € et 3,60 €.",
            "à 3,60 €, et à 1 € pour les familles dont le quotient familial est inférieur à "
            "700 €, dans le cadre de la cantine à 1 €.",
        ),
        replaced(
            DELIBERATION,
            "3,60 €.",
            "3,60 €, dans le cadre de la cantine à 1 € ; le repas des adultes est à 6,20 €.",
        ),
        None,
        {},
    ),
    "authority_competence": (
        "courrier",
        NOISE.format(kennel="il s'est engagé à faire cesser les aboiements."),
        NOISE.format(
            kennel="le chenil compte moins de dix chiens et ne relève donc pas des "
            "installations classées."
        ),
        NOISE_FIELDS,
        {},
    ),
    "salutation_mismatch": (
        "courrier",
        COURRIER.format(point="Vous trouverez ci-joint la délibération du 12 mars 2027.").replace(
            "Monsieur le Préfet,\n", "Madame, Monsieur,\n", 1
        ),
        COURRIER.format(point="Vous trouverez ci-joint la délibération du 12 mars 2027."),
        {**COURRIER_FIELDS, "recipient": {"name": "Monsieur le Préfet de la Seine-Maritime"}},
        {},
    ),
    "length_off_target": ("bulletin_article", _bulletin(40), _bulletin(100), BULLETIN_FIELDS, {}),
    "actes_low_confidence": (
        "deliberation",
        DELIBERATION,
        DELIBERATION,
        None,
        {"acte_code": "7.10", "acte_label": "Divers"},
    ),
}


def test_the_complete_acts_pass_every_legal_check() -> None:
    assert legal_codes("arrete", ARRETE) == []
    assert legal_codes("deliberation", DELIBERATION) == []


def test_every_legal_code_has_a_case() -> None:
    assert set(CASES) == set(LEGAL_CODES)


@pytest.mark.parametrize("code", list(CASES))
def test_each_legal_code_fails_one_act_and_passes_another(code: str) -> None:
    kind, failing, passing, fields, settings = CASES[code]
    warnings = check(kind, failing, fields, **settings)
    assert [w.code for w in warnings] == [code], warnings
    [warning] = warnings
    assert warning.message.endswith((".", "»")), warning.message
    assert looks_french(warning.message), warning.message
    # Every code with a legal reference names it (the precise article may refine the usual one).
    assert bool(warning.source) == (code in SOURCES), warning
    passing_settings = settings
    if code == "actes_low_confidence":
        passing_settings = {"acte_code": "8.1", "acte_label": "Enseignement"}
    assert legal_codes(kind, passing, fields, **passing_settings) == []


def test_every_warning_of_an_act_names_its_legal_source() -> None:
    for code in ("missing_session_counts", "convocation_too_late", "publicity_mode"):
        kind, failing, _, fields, settings = CASES[code]
        [warning] = check(kind, failing, fields, **settings)
        assert "CGCT" in (warning.source or ""), warning


def test_the_quorum_and_the_count_of_votes_are_checked() -> None:
    no_quorum = replaced(
        DELIBERATION,
        COUNTS,
        "Conseillers en exercice : 15. Présents : 7. Représentés : 5. Votants : 12.",
    )
    [warning] = check("deliberation", no_quorum)
    assert warning.code == "missing_session_counts"
    assert "quorum" in warning.message
    assert warning.source == "CGCT, art. L. 2121-17"
    miscounted = replaced(DELIBERATION, "pour 11, contre 0", "pour 9, contre 0")
    [warning] = check("deliberation", miscounted)
    assert "pour + contre + abstentions = 10" in warning.message


def test_the_session_fields_of_the_request_count_when_the_text_omits_them() -> None:
    text = replaced(DELIBERATION, COUNTS, "")
    fields = {
        **DELIBERATION_FIELDS,
        "session": {"members_in_office": 15, "present": 11, "represented": 1},
        "vote": {"for": 11, "against": 0, "abstentions": 1},
    }
    assert legal_codes("deliberation", text, fields) == []


def test_five_clear_days_from_3500_inhabitants() -> None:
    text = replaced(DELIBERATION, "convoqué le 17 juin 2027", "convoqué le 20 juin 2027")
    assert legal_codes("deliberation", text, population=500) == []
    [warning] = check("deliberation", text, population=4000)
    assert warning.code == "convocation_too_late"
    assert warning.source == "CGCT, art. L. 2121-12"
    assert "3 jour(s) franc(s)" in warning.message


def test_a_secretary_named_must_also_sign() -> None:
    text = replaced(DELIBERATION, " — Le secrétaire de séance, Claire Petit", "")
    [warning] = check("deliberation", text)
    assert warning.code == "missing_session_secretary"
    assert warning.source == "CGCT, art. L. 2121-23"


def test_the_number_may_come_from_the_request() -> None:
    text = replaced(ARRETE, "n° 2027-014", "n° [À COMPLÉTER]")
    assert legal_codes("arrete", text, {**ARRETE_FIELDS, "number": "2027-014"}) == []


def test_an_individual_decision_is_notified_not_published() -> None:
    assert legal_codes("arrete", PERMISSION_ARRETE, PERMISSION) == []
    published = replaced(
        PERMISSION_ARRETE,
        "qui sera notifié à M. Julien Marchand",
        "qui sera publié sous forme électronique",
    )
    [warning] = check("arrete", published, PERMISSION)
    assert warning.code == "publicity_mode"
    assert "notification" in warning.message


def test_publicity_follows_the_organisation_mode() -> None:
    posted = replaced(
        ARRETE,
        "publié sous forme électronique sur le site internet de la commune",
        "publié par affichage en mairie",
    )
    assert legal_codes("arrete", posted, publication_mode="affichage") == []
    assert legal_codes("arrete", posted) == ["publicity_mode"]


def test_traffic_arretes_are_not_transmitted_but_other_police_is() -> None:
    assert "transmission_required" not in legal_codes("arrete", ARRETE)
    bathing = replaced(
        ARRETE, "Vu le Code de la route, notamment", "Vu le Code de la route, notamment"
    )
    assert "transmission_required" in legal_codes("arrete", bathing, BATHING)


def test_a_contract_post_needs_motive_duties_level_and_pay() -> None:
    text = replaced(
        POST_DELIBERATION,
        "De fixer le prix du repas selon trois tranches de quotient familial : 1 €, 2,50 € et "
        "3,60 €.",
        CONTRACT_ARTICLE,
    )
    assert legal_codes("deliberation", text, POST) == []
    bare = replaced(
        POST_DELIBERATION,
        "De fixer le prix du repas",
        "De créer un emploi au grade d'attaché, pourvu le cas échéant en application de "
        "l'article L. 332-8",
    )
    [warning] = check("deliberation", bare, POST)
    assert warning.code == "employment_mentions"
    assert "motif" in warning.message
    assert "rémunération" in warning.message


def test_letters_and_articles_get_only_their_own_checks() -> None:
    assert legal_codes("courrier", "Bonjour", COURRIER_FIELDS) == []
    assert legal_codes("bulletin_article", "Bonjour tout le monde " * 30, {"kind": "x"}) == []
    assert legal_codes("synthese", "La secrétaire générale de mairie a lu.", {}) == []


# Each text as a function of a size; the growth check runs it up to 16 times larger.
PATHOLOGICAL: list[tuple[str, Callable[[int], str], int]] = [
    ("considerant", lambda n: "Considérant que " + "a" * (10 * n), 1_250),
    ("number", lambda n: "n° " * n, 3_000),
    ("counts", lambda n: "Conseillers en exercice " * n, 1_250),
    ("convocation", lambda n: "convoqué le " * n + "1er", 2_000),
    ("phone", lambda n: "0612345678" * n, 1_250),
    ("email", lambda n: "a" * (5 * n) + "@" + "b" * (5 * n), 1_250),
    ("amounts", lambda n: "1 000 000 000 " * n, 1_250),
    ("secretary", lambda n: "secrétaire de séance " * n, 1_250),
    ("visas", lambda n: "Vu le Code " * n, 1_250),
    ("authorisation", lambda n: "**Article 1er** : autorisé " * n, 1_250),
    ("restrictive", lambda n: "**Article 1er** : interdit " + "du " * n, 3_000),
    ("instructions", lambda n: "Joindre " * n, 2_000),
]


@pytest.mark.parametrize(
    ("name", "text", "size"), PATHOLOGICAL, ids=[name for name, _, _ in PATHOLOGICAL]
)
@pytest.mark.parametrize("kind", ["arrete", "deliberation", "courrier"])
def test_pathological_texts_are_checked_in_linear_time(
    kind: str, name: str, text: Callable[[int], str], size: int
) -> None:
    # Growth, not a wall-clock bound (which flakes on a loaded machine).
    def check_it(value: str) -> None:
        fields = {**SUBSIDY, "points": [value[:4000]], "subject": value[:500]}
        check(kind, value, fields)

    assert_linear(check_it, text, size)


def test_an_article_that_exempts_from_a_ban_needs_no_dates_of_its_own() -> None:
    exempting = replaced(
        ARRETE,
        "Tout véhicule en stationnement gênant sera mis en fourrière.",
        "Ces interdictions ne s'appliquent ni aux véhicules de secours, ni aux services "
        "techniques.",
    )
    assert legal_codes("arrete", exempting) == []
    undated = replaced(
        ARRETE,
        "Tout véhicule en stationnement gênant sera mis en fourrière.",
        "Le stationnement est interdit rue du Stade.",
    )
    assert legal_codes("arrete", undated) == ["open_ended_measure"]
