"""What the model is told for an act: the visas of the matter with their sources, the 2022
publicity and transmission, the séance and the two signatures."""

from __future__ import annotations

from pydantic import TypeAdapter

from plume.drafting.document import Officer, TenantIdentity
from plume.drafting.prompts import build_messages
from plume.drafting.schemas import DraftRequest, request_fields

IDENTITY = TenantIdentity(
    commune_name="Les Noues",
    publication_mode="affichage",
    population=480,
    mayor=Officer(name="Hélène Marais", title="Maire"),
)


def user_prompt(kind: str, request: dict[str, object]) -> str:
    payload = TypeAdapter(DraftRequest).validate_python({"kind": kind, **request})
    return build_messages(kind, IDENTITY, request_fields(payload))[1]["content"]


def test_an_arrete_prompt_names_the_matters_bases_and_the_publicity() -> None:
    prompt = user_prompt(
        "arrete",
        {
            "subject": "Permission de voirie pour un échafaudage",
            "context": "Une propriétaire demande à poser un échafaudage.",
            "provisions": ["L'échafaudage est autorisé du 1er au 5 mars 2027."],
        },
    )
    head = prompt.split("<donnees>")[0]
    assert "Code général de la propriété des personnes publiques" in head
    assert "CGPPP, art. L. 2122-1" in head
    assert "notifié au bénéficiaire" in head
    assert "n'est pas soumis à l'obligation de transmission" in head
    assert "Certifié exécutoire" in head
    assert "jamais « publié et affiché »" in head
    assert "Hélène Marais" in head


def test_a_deliberation_prompt_asks_for_the_seance_and_both_signatures() -> None:
    prompt = user_prompt(
        "deliberation",
        {
            "subject": "Tarifs de la restauration scolaire",
            "context": "Le prix du repas augmente.",
            "decisions": ["Fixer le prix du repas à 3,40 €."],
            "number": "2027-031",
        },
    )
    head = prompt.split("<donnees>")[0]
    # The number is the request's: data inside the fence, never in the instructions.
    assert "2027-031" not in head
    assert "2027-031" in prompt.split("<donnees>")[1]
    assert "Date de convocation" in head
    assert "Secrétaire de séance" in head
    assert "secrétaire de séance" in head
    assert "signe aussi depuis 2022" in head
    assert "publiée par affichage en mairie" in head
    assert "Code de l'éducation" in head
    assert "est transmise au représentant de l'État" in head


def test_a_letter_prompt_forbids_pasting_the_instructions() -> None:
    prompt = user_prompt(
        "courrier",
        {"subject": "Réponse", "recipient": {"name": "Mme Roux"}, "points": ["Remercier."]},
    )
    assert "ne les recopie jamais telles quelles" in prompt
