"""Offline acts that pass the contrôle de légalité: the 2022 publicity, the séance, the legal
bases of the matter, dated measures, and letters written to their recipient.

The requests below are the project's own, one per situation a review of the offline drafts
found wrong; each test asserts on the text a mayor would sign.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from httpx import AsyncClient

from tests.drafting.helpers import EXAMPLES, created, names_field, post_draft
from tests.support.factories import Factory, Key
from tests.support.problems import assert_problem, invalid_fields

TO_COMPLETE = "[À COMPLÉTER]"
MAYOR = {"name": "Hélène Marais", "title": "Maire"}

SCAFFOLDING: dict[str, Any] = {
    "kind": "arrete",
    "subject": "Permission de voirie pour un échafaudage devant le 6 rue du Puits",
    "context": (
        "Mme Odile Fercoq, propriétaire du 6 rue du Puits, a demandé le 2 mars 2027 à poser un "
        "échafaudage sur le trottoir pour refaire sa toiture. Elle est joignable au "
        "06 98 76 54 32 ou à odile.fercoq@example.org."
    ),
    "provisions": [
        "Mme Odile Fercoq est autorisée à poser un échafaudage sur le trottoir au droit du "
        "6 rue du Puits du 15 au 30 mars 2027.",
        "Un cheminement protégé d'au moins 1,40 m est laissé aux piétons.",
    ],
    "start_date": "2027-03-15",
    "end_date": "2027-03-30",
    "location": "6 rue du Puits",
}

RURAL_PATH: dict[str, Any] = {
    "kind": "arrete",
    "subject": "Fermeture du chemin rural n° 7 dit « des Noues » après un glissement de terrain",
    "context": (
        "Un glissement de terrain a emporté une partie de l'accotement du chemin rural n° 7. "
        "Le passage est dangereux pour tous les usagers."
    ),
    "provisions": [
        "Le chemin rural n° 7 est interdit à toute circulation jusqu'à la fin des travaux de "
        "confortement."
    ],
}

WORKS: dict[str, Any] = {
    "kind": "arrete",
    "subject": "Circulation et stationnement rue Haute pendant le remplacement d'une conduite",
    "context": "Une entreprise remplace la conduite d'assainissement sous la chaussée.",
    "provisions": [
        "Du 3 au 14 mai 2027, la circulation est alternée rue Haute.",
        "Le stationnement est interdit sur l'emprise du chantier.",
        "La signalisation est posée par l'entreprise.",
    ],
    "start_date": "2027-05-03",
    "end_date": "2027-05-14",
}

FLEA_MARKET: dict[str, Any] = {
    "kind": "arrete",
    "subject": "Stationnement interdit place du Calvaire pour la brocante de printemps",
    "context": "L'association des parents d'élèves organise sa brocante le 2 mai 2027.",
    "provisions": [
        "Le dimanche 2 mai 2027, de 6 h à 19 h, le stationnement est interdit place du Calvaire.",
        "Tout véhicule en infraction pourra être mis en fourrière.",
    ],
}

CANTEEN: dict[str, Any] = {
    "kind": "deliberation",
    "subject": "Tarifs de la cantine scolaire à la rentrée 2027",
    "context": "Le coût du repas livré augmente de 15 centimes à la rentrée.",
    "decisions": [
        "Fixer le prix du repas à 3,40 € pour les élèves.",
        "Fixer un tarif de 1 € pour les familles dont le quotient familial est inférieur à "
        "650 €, au titre de la cantine à 1 €.",
    ],
    "session_date": "2027-06-17",
}

SESSION: dict[str, Any] = {
    "convocation_date": "2027-06-10",
    "members_in_office": 15,
    "present": 11,
    "represented": 2,
    "secretary": "Paul Veron",
    "vote_mode": "main_levee",
}


@pytest.fixture
async def small_commune(factory: Factory) -> Key:
    commune = await factory.commune(
        "Les Noues-sur-Andelle",
        population=480,
        publication_mode="affichage",
        mayor=MAYOR,
        secretary={"name": "Chantal Roux", "title": "Secrétaire générale de mairie"},
    )
    return await factory.key(commune, "agent")


def article_texts(text: str) -> list[str]:
    return re.findall(r"^\*\*Article [^*]+\*\* : (.+)$", text, re.MULTILINE)


# --- every act: the 2022 publicity, transmission, the exécutoire certificate ------------


@pytest.mark.parametrize("name", sorted(n for n, r in EXAMPLES.items() if r["kind"] == "arrete"))
async def test_no_arrete_is_published_and_posted_the_pre_2022_way(
    client: AsyncClient, agent: Key, name: str
) -> None:
    text = (await created(client, agent, EXAMPLES[name]))["text"]
    assert "publié et affiché" not in text
    assert "secrétaire de mairie" not in text.lower()
    assert "secrétaire général de mairie" in text
    assert "Certifié exécutoire" in text
    assert "L. 2131-2" in text


async def test_an_individual_permission_is_notified_and_rests_on_the_public_domain(
    client: AsyncClient, agent: Key
) -> None:
    text = (await created(client, agent, SCAFFOLDING))["text"]
    visas = [line for line in text.splitlines() if line.startswith("Vu ")]
    assert any("propriété des personnes publiques" in v and "L. 2122-1" in v for v in visas)
    assert any("L. 2213-6" in v for v in visas)
    assert "Vu la demande présentée le 2 mars 2027 ;" in visas
    # Not the traffic police: no L. 2213-1, no Code de la route.
    assert not any("L. 2213-1" in v or "Code de la route" in v for v in visas)
    assert "qui sera notifié au bénéficiaire" in text
    assert "précaire et révocable" in text
    assert "droits des tiers" in text
    assert "redevance" in text
    # The splitter keeps « Mme Odile Fercoq » whole, and contact details stay out of the act.
    assert "Considérant que Mme Odile Fercoq" in text
    assert "06 98 76 54 32" not in text
    assert "example.org" not in text


async def test_a_rural_path_is_closed_under_the_rural_code_until_an_arrete_lifts_it(
    client: AsyncClient, agent: Key
) -> None:
    text = (await created(client, agent, RURAL_PATH))["text"]
    assert "Vu le Code rural et de la pêche maritime, notamment son article L. 161-5 ;" in text
    assert "L. 2213-1" not in text
    assert "jusqu'à la fin des travaux" not in text
    assert "jusqu'à l'arrêté levant la mesure" in text
    assert "véhicules de secours" in text
    # Traffic police arrêtés are not transmitted to the préfecture (CGCT L. 2131-2, 2°).
    assert "n'est pas soumis à l'obligation de transmission" in text


async def test_every_restrictive_measure_falls_within_dates(
    client: AsyncClient, agent: Key
) -> None:
    text = (await created(client, agent, WORKS))["text"]
    assert any(
        "du 3 mai 2027 au 14 mai 2027 inclus" in article for article in article_texts(text)
    ), text
    assert "24 novembre 1967" in text
    # Who asked for the works is to be named, not guessed.
    assert f"Vu la demande présentée le {TO_COMPLETE} par {TO_COMPLETE}" in text


async def test_towing_comes_with_its_article_of_the_code_de_la_route(
    client: AsyncClient, agent: Key
) -> None:
    text = (await created(client, agent, FLEA_MARKET))["text"]
    visas = [line for line in text.splitlines() if line.startswith("Vu ")]
    road = [v for v in visas if "Code de la route" in v]
    assert len(road) == 1, visas  # one visa per code
    assert "L. 325-1" in road[0]
    assert f"La signalisation réglementaire est mise en place et entretenue par {TO_COMPLETE}" in (
        text
    )


async def test_the_communes_settings_choose_the_publicity_and_the_signatures(
    client: AsyncClient, small_commune: Key
) -> None:
    text = (await created(client, small_commune, WORKS))["text"]
    assert "qui sera publié par affichage en mairie" in text
    assert "La secrétaire générale de mairie" in text
    assert "Hélène Marais" in text

    deliberation = await created(client, small_commune, {**CANTEEN, "session": SESSION})
    assert "publiée par affichage en mairie" in deliberation["text"]
    assert "sous la présidence de Hélène Marais, Maire" in deliberation["text"]


# --- délibérations: the séance --------------------------------------------------------


async def test_a_deliberation_shows_its_seance_and_is_cosigned_by_the_secretary(
    client: AsyncClient, agent: Key
) -> None:
    request = {
        **CANTEEN,
        "number": "2027-031",
        "session": SESSION,
        "vote": {"for": 12, "against": 0, "abstentions": 1},
    }
    draft = await created(client, agent, request)
    text = draft["text"]
    assert text.startswith("# Délibération n° 2027-031 du conseil municipal")
    assert "Date de convocation : 10 juin 2027" in text
    assert "Conseillers en exercice : 15 ; présents : 11 ; représentés : 2 ; votants : 13" in text
    assert "Quorum : atteint" in text
    assert "Votes : pour 12, contre 0, abstentions 1 (vote à main levée)." in text
    assert "Secrétaire de séance : Paul Veron" in text
    # Both sign since 2022 (CGCT L. 2121-23).
    assert "Le secrétaire de séance,\nPaul Veron" in text
    assert "transmise au représentant de l'État" in text
    assert "Certifié exécutoire par le Maire" in text
    assert "Paul Veron" in (draft["sections"]["signature"] or "")


async def test_what_the_seance_does_not_say_is_left_to_complete_never_invented(
    client: AsyncClient, agent: Key
) -> None:
    text = (await created(client, agent, CANTEEN))["text"]
    assert f"Date de convocation : {TO_COMPLETE}" in text
    assert f"présents : {TO_COMPLETE}" in text
    assert f"Quorum : {TO_COMPLETE}" in text
    assert f"mode de scrutin : {TO_COMPLETE}" in text
    assert f"Secrétaire de séance : {TO_COMPLETE}" in text
    assert f"Délibération n° {TO_COMPLETE}" in text
    assert "régulièrement convoqué" not in text


async def test_a_canteen_grid_keeps_the_states_aid_and_is_an_education_matter(
    client: AsyncClient, agent: Key
) -> None:
    draft = await created(client, agent, CANTEEN)
    assert draft["acte_nature"]["code"] == "8.1"
    text = draft["text"]
    assert "Code de l'éducation" in text
    assert "R. 531-52" in text
    # Two tranches lose the aid: the draft says a third one is to be set.
    assert "au moins trois tranches" in text
    assert f"{TO_COMPLETE}" in text


async def test_a_contractual_post_states_what_the_law_requires(
    client: AsyncClient, agent: Key
) -> None:
    request = {
        "kind": "deliberation",
        "subject": "Création d'un emploi permanent d'adjoint technique à temps non complet",
        "context": "L'entretien des bâtiments communaux demande un agent 20 heures par semaine.",
        "decisions": ["Créer un emploi permanent d'adjoint technique territorial (20/35e)."],
        "legal_bases": ["Code général de la fonction publique, articles L. 313-1 et L. 332-8"],
    }
    text = (await created(client, agent, request))["text"]
    assert "**Article 1er** : de créer un emploi permanent" in text
    assert f"motif : {TO_COMPLETE}" in text
    assert f"rémunération : {TO_COMPLETE}" in text


async def test_a_subsidy_is_not_authorised_twice(client: AsyncClient, agent: Key) -> None:
    request = {
        "kind": "deliberation",
        "subject": "Subvention exceptionnelle au club de tennis de table",
        "context": "Le club organise un tournoi régional en 2027.",
        "decisions": [
            "Attribuer une subvention exceptionnelle de 700 € au club.",
            "Autoriser le Maire à signer tout document relatif à cette décision.",
        ],
    }
    text = (await created(client, agent, request))["text"]
    assert text.lower().count("autoris") == 1, text
    assert "2000-321" in text


# --- letters and articles -------------------------------------------------------------


async def test_a_letter_speaks_to_its_recipient(client: AsyncClient, agent: Key) -> None:
    request = {
        "kind": "courrier",
        "subject": "Demande de subvention DETR pour la réfection du toit de la mairie",
        "recipient": {"name": "Monsieur le Préfet de l'Eure"},
        "points": [
            "Présenter le projet : réfection complète de la couverture de la mairie.",
            "Joindre le devis de l'entreprise et le plan de financement.",
            "Indiquer que les travaux sont prévus à l'automne 2027.",
        ],
        "tone": "formel",
    }
    text = (await created(client, agent, request))["text"]
    assert "Monsieur le Préfet,\n" in text
    assert "Madame, Monsieur" not in text
    assert "haute considération" in text
    assert "Présenter le projet" not in text
    assert "Joindre" not in text
    assert "Je vous présente le projet : réfection complète" in text
    assert "Pièces jointes :** le devis de l'entreprise et le plan de financement" in text
    assert "R. 2334-24" in text

    reply = {
        "kind": "courrier",
        "subject": "Votre signalement d'un lampadaire éteint",
        "recipient": {"name": "M. Armand Tessier"},
        "points": ["Remercier M. Tessier de son message du 4 mars 2027."],
        "tone": "cordial",
    }
    text = (await created(client, agent, reply))["text"]
    assert "Monsieur,\n" in text
    assert "Je vous remercie de votre message du 4 mars 2027." in text


async def test_a_short_article_says_how_much_is_left_to_write(
    client: AsyncClient, agent: Key
) -> None:
    request = {**EXAMPLES["bulletin-fete-ecole"], "length_words": 400}
    draft = await created(client, agent, request)
    assert TO_COMPLETE in draft["text"]
    assert "400 mots demandés" in draft["text"]
    assert TO_COMPLETE in _offline_warning(draft)["message"]
    # An article of the asked length has nothing to complete, and is not told it has.
    draft = await created(client, agent, {**request, "length_words": 60})
    assert TO_COMPLETE not in draft["text"]
    assert TO_COMPLETE not in _offline_warning(draft)["message"]


# --- validation -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("session", "vote", "field"),
    [
        ({"members_in_office": 15, "present": 16}, None, "session.present"),
        ({"members_in_office": 15, "present": 10, "represented": 11}, None, "session.represented"),
        ({"members_in_office": 15, "present": 14, "represented": 2}, None, "session.represented"),
        ({"present": 10, "represented": 1}, {"for": 10, "against": 2}, "vote"),
        ({"convocation_date": "2027-06-20"}, None, "session"),
        ({"vote_mode": "a_la_criee"}, None, "session.vote_mode"),
        ({"members_in_office": 0}, None, "session.members_in_office"),
    ],
)
async def test_an_impossible_seance_is_refused_naming_the_field(
    client: AsyncClient,
    agent: Key,
    session: dict[str, Any],
    vote: dict[str, int] | None,
    field: str,
) -> None:
    request = {**CANTEEN, "session": session}
    if vote is not None:
        request["vote"] = vote
    response = await post_draft(client, agent, request)
    assert_problem(response, 422, "invalid_request")
    assert names_field(invalid_fields(response), field), response.text


@pytest.mark.parametrize("kind", ["arrete", "courrier"])
async def test_a_seance_belongs_to_deliberations_only_and_a_number_to_acts(
    client: AsyncClient, agent: Key, kind: str
) -> None:
    base = SCAFFOLDING if kind == "arrete" else EXAMPLES["courrier-haie-debordante"]
    response = await post_draft(client, agent, {**base, "session": SESSION})
    assert names_field(invalid_fields(response), "session"), response.text
    if kind == "courrier":
        response = await post_draft(client, agent, {**base, "number": "12"})
        assert names_field(invalid_fields(response), "number"), response.text
    else:
        draft = await created(client, agent, {**base, "number": "2027-044"})
        assert draft["text"].startswith("# Arrêté du maire n° 2027-044")


def _offline_warning(draft: dict[str, Any]) -> dict[str, Any]:
    return next(w for w in draft["warnings"] if w["code"] == "offline_draft")
