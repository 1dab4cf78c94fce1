"""The legal bases by matter (drafting/data/legal_bases.yaml): which matter a request is
about, which visas it needs, whether a drafted act cites them; and the offline acts built
on them, in linear time."""

from __future__ import annotations

import pytest

from plume.drafting import legal_bases
from plume.drafting.legal_bases import matter_for, matters_for, matters_for_request
from plume.drafting.offline import compose_arrete
from tests.support.timing import assert_linear


def keys(found: list[legal_bases.Matter]) -> list[str]:
    return [matter.key for matter in found]


def test_every_matter_names_the_source_of_each_visa() -> None:
    table = legal_bases.table()
    assert len(table) >= 10
    for matter in table:
        assert matter.keywords, matter.key
        for visa in matter.visas:
            assert visa.source.strip(), (matter.key, visa.text)
            # A visa as written by the drafter is recognised as cited by the same table.
            assert visa.cited_in(f"Vu le {visa.text} ;"), (matter.key, visa.text)


def test_scaffolding_on_the_pavement_is_an_occupation_of_the_public_domain() -> None:
    found = matters_for(
        "arrete",
        "Permission de voirie pour un échafaudage devant le 8 rue des Écoles",
        "Le propriétaire demande à poser un échafaudage sur le trottoir ; le stationnement est "
        "interdit au droit du chantier.",
    )
    assert keys(found)[0] == "occupation_domaine_public"
    # Not the mayor's traffic police: the permission rests on the public domain's code.
    assert "circulation_stationnement" not in keys(found)
    texts = " ".join(visa.text for visa in found[0].visas)
    assert "L. 2122-1" in texts
    assert "L. 2125-1" in texts
    assert "L. 2213-6" in texts


def test_a_rural_path_falls_under_the_rural_code_not_the_traffic_police() -> None:
    matter = matter_for(
        "arrete",
        "Fermeture du chemin rural n° 4 dit des Saules",
        "Un éboulement rend le passage dangereux ; la circulation y est interdite.",
    )
    assert matter is not None
    assert matter.key == "chemin_rural"
    assert any("L. 161-5" in visa.text for visa in matter.visas)
    assert matters_for("arrete", "Fermeture du chemin rural n° 4", "circulation") == [matter]


def test_a_parking_ban_with_towing_needs_the_fourriere_article() -> None:
    found = matters_for(
        "arrete",
        "Stationnement interdit place de l'Église pour la brocante",
        "Tout véhicule en infraction sera mis en fourrière.",
    )
    assert set(keys(found)) >= {"circulation_stationnement", "fourriere"}
    fourriere = next(m for m in found if m.key == "fourriere")
    assert fourriere.missing_from(["Vu le Code de la route, notamment son article R. 411-8 ;"])
    assert not fourriere.missing_from(
        ["Vu le Code de la route, notamment ses articles L. 325-1 et R. 417-10 ;"]
    )


@pytest.mark.parametrize(
    ("kind", "fields", "expected"),
    [
        (
            "deliberation",
            {
                "subject": "Tarifs de la restauration scolaire à la rentrée",
                "decisions": ["Fixer le prix du repas à 3,20 €."],
            },
            "restauration_scolaire",
        ),
        (
            "deliberation",
            {
                "subject": "Subvention à l'amicale des sapeurs-pompiers",
                "decisions": ["Attribuer 600 €."],
            },
            "subvention",
        ),
        (
            "deliberation",
            {
                "subject": "Création d'un emploi permanent d'adjoint administratif",
                "decisions": ["Créer l'emploi à temps complet."],
            },
            "emploi_permanent",
        ),
        (
            "deliberation",
            {
                "subject": "Deux emplois non permanents pour l'été",
                "decisions": ["Créer deux emplois pour un accroissement saisonnier d'activité."],
            },
            "emploi_non_permanent",
        ),
    ],
)
def test_deliberations_get_the_bases_of_their_matter(
    kind: str, fields: dict[str, object], expected: str
) -> None:
    found = matters_for_request(kind, fields)
    assert keys(found)[0] == expected, keys(found)


def test_a_visa_counts_only_with_its_code_and_its_article() -> None:
    occupation = next(m for m in legal_bases.table() if m.key == "occupation_domaine_public")
    cgppp = occupation.visas[0]
    assert cgppp.cited_in("Vu le CGPPP, et notamment ses articles L.2122-1 à L.2122-3 ;")
    assert not cgppp.cited_in("Vu le Code général des collectivités territoriales, L. 2122-1 ;")
    assert not cgppp.cited_in("Vu le Code général de la propriété des personnes publiques ;")
    assert not cgppp.cited_in(
        "Vu le Code général de la propriété des personnes publiques, article L. 2122-10 ;"
    )


def test_letters_and_articles_have_no_matter() -> None:
    assert matters_for("courrier", "Permission de voirie", "échafaudage") == []
    # A matter kept to délibérations is not an arrêté's.
    assert "restauration_scolaire" not in keys(matters_for("arrete", "Cantine", "cantine"))


@pytest.mark.parametrize(
    "piece",
    [
        "M. ",  # every piece an abbreviation: the sentences are joined, never re-read
        "Vu la demande le 2 mars 2027. ",
        "jusqu'à la fin des travaux de ",
        "Tél. 06 12 34 56 78 ",
    ],
)
def test_offline_acts_are_composed_in_linear_time(piece: str) -> None:
    def compose_act(text: str) -> object:
        request = {
            "subject": "Fermeture du chemin rural",
            "context": text,
            "provisions": [text],
        }
        return compose_arrete(
            request, {"commune_name": "Les Noues", "tribunal_administratif": "Rouen"}
        )

    assert_linear(compose_act, lambda n: piece * n, 200)
