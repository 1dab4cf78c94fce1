"""The eleven requests of the December 2026 review of the offline acts (tests/drafting/
review_requests), drafted through the API for a village of 480 inhabitants: every defect the
review listed is either gone from the text or named by a warning the agent reads.

Each test is one request; each assertion one finding of the review, in its words.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from httpx import AsyncClient

from tests.support.factories import Factory, Key

REQUESTS_DIR = Path(__file__).with_name("review_requests")
REQUESTS: dict[str, dict[str, Any]] = {
    path.stem: json.loads(path.read_text(encoding="utf-8"))
    for path in sorted(REQUESTS_DIR.glob("*.json"))
}
TO_COMPLETE = "[À COMPLÉTER]"


@pytest.fixture
async def village(factory: Factory) -> Key:
    commune = await factory.commune(
        "Saint-Martin-sur-Cailly",
        population=480,
        mayor={"name": "Jean-Marc Gaillon", "title": "Maire"},
    )
    return await factory.key(commune, "agent")


async def drafted(client: AsyncClient, key: Key, name: str) -> tuple[str, dict[str, str], Any]:
    """The draft's text, its warnings by code, and the draft."""
    response = await client.post("/v1/drafts", headers=key.headers, json=REQUESTS[name])
    assert response.status_code == 201, response.text
    draft = response.json()
    warnings = {w["code"]: w["message"] for w in draft["warnings"]}
    return draft["text"], warnings, draft


def visas(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("Vu ")]


def articles(text: str) -> list[str]:
    return re.findall(r"^\*\*Article [^*]+\*\* : (.+)$", text, re.MULTILINE)


def test_the_eleven_requests_of_the_review_are_here() -> None:
    kinds = sorted(request["kind"] for request in REQUESTS.values())
    assert len(REQUESTS) == 11
    assert kinds.count("arrete") == 4
    assert kinds.count("deliberation") == 3
    assert kinds.count("courrier") == 2
    assert kinds.count("bulletin_article") == 2


# --- Common to all seven acts ------------------------------------------------------------


@pytest.mark.parametrize(
    "name", sorted(n for n, r in REQUESTS.items() if r["kind"] in ("arrete", "deliberation"))
)
async def test_every_act_has_its_2022_publicity_certificate_number_and_transmission(
    client: AsyncClient, village: Key, name: str
) -> None:
    text, warnings, draft = await drafted(client, village, name)
    # Publicity is outdated: no « publié et affiché », the commune's mode (electronic by
    # default) or notification for an individual decision.
    assert "publié et affiché" not in text
    assert "sous forme électronique" in text or "notifié au bénéficiaire" in text
    # No exécutoire certificate, no registre number.
    assert "Certifié exécutoire" in text
    assert f"n° {TO_COMPLETE}" in text
    assert "missing_act_number" in warnings
    # Transmission is never addressed.
    assert "L. 2131-2" in text
    # Outdated title.
    assert "secrétaire de mairie" not in text.lower()
    # What was right stays: the recours clause (TA Rouen) and the signature block.
    assert "tribunal administratif de Rouen" in text
    assert "Jean-Marc Gaillon" in text
    assert draft["acte_nature"] is not None


# --- Arrêtés ---------------------------------------------------------------------------------


async def test_scaffolding_rests_on_the_public_domain_and_keeps_its_text_whole(
    client: AsyncClient, village: Key
) -> None:
    text, warnings, _ = await drafted(client, village, "arrete-echafaudage-particulier")
    # Broken text: « M. Julien » was cut into « Considérant que M ; ».
    assert "Considérant que M ;" not in text
    assert "Considérant que M. Julien Marchand" in text
    assert "broken_text" not in warnings
    # Personal data: the phone and e-mail were a considérant.
    assert "06 12 34 56 78" not in text
    assert "example.fr" not in text
    # Wrong base: an occupation of the domaine public, not police.
    found = visas(text)
    assert any("propriété des personnes publiques" in v and "L. 2122-1" in v for v in found)
    assert any("L. 2125-1" in v for v in found)
    assert any("L. 2213-6" in v for v in found)
    assert "Vu la demande présentée le 4 février 2027 ;" in found
    assert not any("Code de la route" in v for v in found)
    # The tarif délibération (or the exemption) is to be given.
    assert "redevance fixée par la délibération du conseil municipal du [À COMPLÉTER]" in text
    # Missing: droits des tiers, signage, notification to the bénéficiaire.
    assert "Les droits des tiers sont et demeurent réservés" in text
    assert "responsable de la signalisation" in text
    assert "notifié au bénéficiaire" in text
    assert "précaire et révocable" in text
    assert "n'est pas soumis à l'obligation de transmission" in text


async def test_scaffolding_without_signage_gets_the_iisr_article(
    client: AsyncClient, village: Key
) -> None:
    request = dict(REQUESTS["arrete-echafaudage-particulier"])
    request["provisions"] = request["provisions"][:1]
    response = await client.post("/v1/drafts", headers=village.headers, json=request)
    text = response.json()["text"]
    assert "instruction interministérielle sur la signalisation routière (huitième partie)" in text


async def test_the_rural_path_is_closed_under_the_rural_code_until_an_arrete_lifts_it(
    client: AsyncClient, village: Key
) -> None:
    text, warnings, draft = await drafted(client, village, "arrete-fermeture-chemin-rural")
    found = visas(text)
    # Wrong visas: L. 2213-1 does not cover a chemin rural.
    assert any("Code rural" in v and "L. 161-5" in v for v in found)
    assert not any("L. 2213-1" in v for v in found)
    assert "legal_basis_suspect" not in warnings
    # No end date: « jusqu'à la fin des travaux » is open-ended.
    assert "jusqu'à la fin des travaux" not in text
    assert "jusqu'à l'arrêté levant la mesure" in text
    assert "open_ended_measure" not in warnings
    # Emergency services, services techniques and the bureau d'études exempted.
    exemption = next(a for a in articles(text) if "véhicules de secours" in a)
    assert "services techniques" in exemption
    assert "études" in exemption
    assert draft["acte_nature"]["code"] == "6.1"


async def test_the_water_works_are_dated_name_their_parties_and_ask_about_competence(
    client: AsyncClient, village: Key
) -> None:
    text, warnings, _ = await drafted(client, village, "arrete-travaux-eau-potable")
    # Only Article 1 was dated: the parking ban and the 30 km/h limit read as permanent.
    assert (
        "Les mesures du présent arrêté s'appliquent du 1er mars 2027 au 12 mars 2027 inclus."
        in (articles(text))
    )
    assert "open_ended_measure" not in warnings
    # Parties not named: the request is to be named, not guessed.
    assert f"Vu la demande présentée le {TO_COMPLETE} par {TO_COMPLETE}" in text
    # Missing visa: the arrêté interministériel du 24 novembre 1967.
    assert any("24 novembre 1967" in v for v in visas(text))
    # Competence not checked: a route départementale, a route à grande circulation.
    assert "route départementale" in warnings["authority_competence"]
    assert "grande circulation" in warnings["authority_competence"]


async def test_the_flea_market_tows_under_the_code_de_la_route_and_names_who_signs_the_way(
    client: AsyncClient, village: Key
) -> None:
    text, warnings, _ = await drafted(client, village, "arrete-vide-greniers")
    # Fourrière without a visa.
    road = [v for v in visas(text) if "Code de la route" in v]
    assert len(road) == 1
    assert "L. 325-1" in road[0]
    assert "R. 417-10" in road[0]
    # No one in charge of signage.
    assert f"La signalisation réglementaire est mise en place et entretenue par {TO_COMPLETE}." in (
        articles(text)
    )
    # The déviation by the route de Forges may involve the Département.
    assert "authority_competence" in warnings
    # Every measure within the dates of article 1er, no undated ban.
    assert "open_ended_measure" not in warnings


# --- Délibérations -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", sorted(n for n, r in REQUESTS.items() if r["kind"] == "deliberation")
)
async def test_every_deliberation_shows_its_seance_or_says_what_is_missing(
    client: AsyncClient, village: Key, name: str
) -> None:
    text, warnings, _ = await drafted(client, village, name)
    # En exercice, présents, représentés (pouvoirs named), votants; convocation; quorum;
    # the hour; the mode of vote; the secrétaire de séance who co-signs.
    assert f"Conseillers en exercice : {TO_COMPLETE}" in text
    assert f"Pouvoirs : {TO_COMPLETE}" in text
    assert f"Date de convocation : {TO_COMPLETE}" in text
    assert f"Quorum : {TO_COMPLETE}" in text
    assert re.search(r"^Séance du .+ à \[À COMPLÉTER\]$", text, re.MULTILINE)
    assert f"mode de scrutin : {TO_COMPLETE}" in text
    assert "Le secrétaire de séance," in text
    assert "régulièrement convoqué" not in text
    for code in (
        "missing_session_counts",
        "convocation_too_late",
        "missing_session_secretary",
        "missing_vote_mode",
    ):
        assert code in warnings, code
    # Visas in a set order, each code once; articles all in the same form.
    for code in ("duplicate_visa", "visa_order", "mixed_article_form"):
        assert code not in warnings, code
    cited = visas(text)
    assert len(cited) == len(set(cited))
    # The visas came after the exposé: they now frame it.
    assert text.index(cited[-1]) < text.index("### Exposé")
    assert all(re.match(r"(de |d'|Le |La |L'|Pour )", a) for a in articles(text)), articles(text)


async def test_the_seance_given_in_the_request_is_shown_not_asked(
    client: AsyncClient, village: Key
) -> None:
    request = {
        **REQUESTS["deliberation-tarifs-cantine"],
        "number": "2027-024",
        "session": {
            "convocation_date": "2027-06-18",
            "start_time": "20:00",
            "members_in_office": 15,
            "present": 11,
            "represented": 1,
            "proxies": [{"grantor": "Mme Anne Lebrun", "holder": "M. Luc Hébert"}],
            "secretary": "Mme Claire Petit",
            "vote_mode": "main_levee",
        },
    }
    response = await client.post("/v1/drafts", headers=village.headers, json=request)
    assert response.status_code == 201, response.text
    text = response.json()["text"]
    codes = {w["code"] for w in response.json()["warnings"]}
    assert "Séance du 24 juin 2027 à 20 h 00" in text
    assert "Pouvoirs : Mme Anne Lebrun à M. Luc Hébert" in text
    assert "Quorum : atteint, 11 conseillers présents sur 15 en exercice" in text
    assert "Le secrétaire de séance,\nMme Claire Petit" in text.replace("\n\n", "\n")
    assert not codes & {
        "missing_session_counts",
        "convocation_too_late",
        "missing_session_secretary",
        "missing_vote_mode",
        "missing_act_number",
    }


async def test_a_pouvoir_per_member_represented(client: AsyncClient, village: Key) -> None:
    request = {
        **REQUESTS["deliberation-tarifs-cantine"],
        "session": {"present": 11, "represented": 2, "proxies": [{"grantor": "A", "holder": "B"}]},
    }
    response = await client.post("/v1/drafts", headers=village.headers, json=request)
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "proxies" in response.text
    assert "un pouvoir par conseiller représenté" in response.text


async def test_the_post_states_its_grade_and_the_contract_mentions_are_asked(
    client: AsyncClient, village: Key
) -> None:
    text, warnings, draft = await drafted(client, village, "deliberation-creation-poste")
    # CGFP L. 313-1: the grade is stated (adjoint technique territorial).
    assert "adjoint technique territorial" in text
    # It cites L. 332-8, so the motif, fonctions, niveaux de recrutement et de rémunération:
    # left to complete and named by the warning.
    contract = next(a for a in articles(text) if "L. 332-8" in a)
    for mention in ("motif", "fonctions", "niveau de recrutement", "rémunération"):
        assert f"{mention} : {TO_COMPLETE}" in contract
    message = warnings["employment_mentions"]
    assert "motif" in message
    assert "grade" not in message.split(":")[0]
    # Visas: CGFP cited once.
    assert sum("fonction publique" in v for v in visas(text)) == 1
    assert draft["acte_nature"]["code"].startswith("4.")


async def test_the_subsidy_asks_who_is_interested_and_requires_the_republican_contract(
    client: AsyncClient, village: Key
) -> None:
    text, warnings, draft = await drafted(client, village, "deliberation-subvention-comite-fetes")
    # No check for interested councillors (L. 2131-11, C. pén. 432-12).
    assert (
        "L. 2131-11"
        in (next(w for w in draft["warnings"] if w["code"] == "councillor_interest"))["source"]
    )
    # No contrat d'engagement républicain.
    assert "contrat d'engagement républicain" in text
    assert "republican_commitment" not in warnings
    # Duplicate article: the authorisation once; the CGCT cited once.
    assert sum("autoriser le Maire" in a for a in articles(text)) == 1
    assert sum("collectivités territoriales" in v for v in visas(text)) == 1
    assert "subsidy_agreement" not in warnings  # 1 500 €, under 23 000 €
    assert draft["acte_nature"]["code"] == "7.5"


async def test_the_canteen_is_an_education_matter_and_keeps_the_states_aid(
    client: AsyncClient, village: Key
) -> None:
    text, warnings, draft = await drafted(client, village, "deliberation-tarifs-cantine")
    # State aid lost: two tranches; a third is to be set, and the warning says why.
    assert "au moins trois tranches" in text
    assert "trois tranches" in warnings["canteen_tranches"]
    # Missing visas: Code de l'éducation L. 131-13, R. 531-52/53.
    education = next(v for v in visas(text) if "Code de l'éducation" in v)
    assert "L. 131-13" in education
    assert "R. 531-52" in education
    # Classification: 8.1 « Enseignement », not 7.10 « Divers ».
    assert draft["acte_nature"]["code"] == "8.1"
    assert "actes_low_confidence" not in warnings


# --- Courriers ---------------------------------------------------------------------------------


async def test_the_detr_request_is_written_to_the_prefet(client: AsyncClient, village: Key) -> None:
    text, warnings, _ = await drafted(client, village, "courrier-demande-detr")
    # The instructions were pasted as written.
    assert "Présenter le projet" not in text
    assert "Joindre la délibération" not in text
    assert "courrier_instruction_left" not in warnings
    # « Monsieur le Préfet », « haute considération ».
    assert "\nMonsieur le Préfet,\n" in text
    assert "Madame, Monsieur" not in text
    assert "haute considération" in text
    assert "salutation_mismatch" not in warnings
    # The pièces jointes are listed; the work does not start before the dossier is complete.
    assert "Pièces jointes" in text
    assert "R. 2334-24" in text


async def test_the_noise_reply_speaks_to_mme_lefebvre_and_asks_about_the_kennel(
    client: AsyncClient, village: Key
) -> None:
    text, warnings, _ = await drafted(client, village, "courrier-reponse-nuisances")
    # Written in the third person (« Accuser réception de son courrier »).
    assert "Accuser réception" not in text
    assert "son courrier" not in text
    assert "votre courrier" in text
    # « Madame, Monsieur » to a named Mme.
    assert "\nMadame,\n" in text
    assert "Madame, Monsieur" not in text
    # No ICPE check: ten dogs or more is an installation classée (rubrique 2120).
    assert "2120" in warnings["authority_competence"]
    # The neighbour is named: the agent is asked whether the letter needs it.
    assert "Patrick Durand" in warnings["personal_data_in_act"]


# --- Bulletins -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["bulletin-repair-cafe", "bulletin-travaux-salle"])
async def test_a_short_offline_article_says_it_is_short_and_not_rewritten(
    client: AsyncClient, village: Key, name: str
) -> None:
    text, warnings, draft = await drafted(client, village, name)
    # Far too short: the warning says so, and the text says what to add.
    assert "trop court" in warnings["length_off_target"]
    assert TO_COMPLETE in text
    # Not rewritten: the offline warning says the key points are as typed.
    assert "tels que vous les avez écrits" in warnings["offline_draft"]
    # The offline warning cites [À COMPLÉTER] passages only where there are some.
    assert "[À COMPLÉTER]" in warnings["offline_draft"]
    assert draft["acte_nature"] is None
