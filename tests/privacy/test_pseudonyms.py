"""One request's pseudonyms: typed placeholders, the same resident the same placeholder in
every message, restoration exact (streams included: a placeholder cut between chunks), a
placeholder the model invented left as it is, nothing of the mapping in a repr."""

from __future__ import annotations

import threading

import pytest

from plume.privacy import detection
from plume.privacy.pseudonyms import Pseudonyms, fields_with_personal_data

LETTER = (
    "M. Jean Dupont, 12 rue Jean Jaurès, 76000 Rouen (jean.dupont@example.fr, 06.12.34.56.78), "
    "né le 12 mars 1980, NIR 1 84 12 76 451 089 46, IBAN FR76 3000 6000 0112 3456 7890 189, "
    "véhicule AB-123-CD. M. Dupont remercie Mme Nathalie Leprévost, Maire."
)


def test_each_identifier_gets_its_typed_placeholder_and_the_commune_is_left_alone() -> None:
    pseudonyms = Pseudonyms(["Nathalie Leprévost", "Maire"])
    protected = pseudonyms.protect(LETTER)
    assert protected == (
        "M. [PERSONNE_1], [ADRESSE_1] ([EMAIL_1], [TELEPHONE_1]), né le [DATE_NAISSANCE_1], "
        "NIR [NIR_1], IBAN [IBAN_1], véhicule [PLAQUE_1]. M. [PERSONNE_1] remercie "
        "Mme Nathalie Leprévost, Maire."
    )
    assert pseudonyms.count == 8
    assert pseudonyms.restore(protected) == LETTER.replace("M. Dupont", "M. Jean Dupont")


def test_the_same_person_is_the_same_placeholder_in_every_message() -> None:
    pseudonyms = Pseudonyms()
    messages = pseudonyms.protect_messages(
        [
            {"role": "system", "content": "L'usager est Mme Martine Courtois."},
            {"role": "user", "content": [{"type": "text", "text": "Écris à Martine Courtois."}]},
        ]
    )
    assert messages[0]["content"] == "L'usager est Mme [PERSONNE_1]."
    assert messages[1]["content"][0]["text"] == "Écris à [PERSONNE_1]."


def test_two_people_of_one_family_stay_two() -> None:
    pseudonyms = Pseudonyms()
    text = pseudonyms.protect("Mme Sophie Lemaire et M. Thomas Lemaire ; M. Lemaire signe.")
    assert text.startswith("Mme [PERSONNE_1] et M. [PERSONNE_2]")
    # A surname two people bear is a third placeholder, never the wrong person.
    assert "[PERSONNE_3]" in text


def test_an_invented_placeholder_stays_as_it_is() -> None:
    pseudonyms = Pseudonyms()
    pseudonyms.protect("Mme Rose Marie")
    assert pseudonyms.restore("[PERSONNE_1] et [PERSONNE_7] [ADRESSE_1]") == (
        "Rose Marie et [PERSONNE_7] [ADRESSE_1]"
    )


def test_a_placeholder_cut_between_chunks_is_restored_whole() -> None:
    pseudonyms = Pseudonyms()
    pseudonyms.protect("M. Pierre Lapierre, 8 rue Jean Jaurès")
    answer = "Bonjour [PERSONNE_1], votre adresse [ADRESSE_1] [x] est notée [PERSONNE_9]."
    for size in (1, 2, 3, 5, 7, 11):
        restorer = pseudonyms.restorer()
        pieces = [restorer.feed(answer[i : i + size]) for i in range(0, len(answer), size)]
        out = "".join(pieces) + restorer.flush()
        assert out == pseudonyms.restore(answer), size
        assert not any("[PERSONNE_1" in piece for piece in pieces)
    assert "Pierre Lapierre" in pseudonyms.restore(answer)
    # A stream that ends on what looked like the start of a placeholder gives it back.
    restorer = pseudonyms.restorer()
    assert restorer.feed("fin [PERS") == "fin "
    assert restorer.flush() == "[PERS"


def test_nothing_of_the_mapping_is_printed() -> None:
    pseudonyms = Pseudonyms()
    pseudonyms.protect("M. Jean Dupont")
    assert "Dupont" not in repr(pseudonyms)
    assert "Dupont" not in str(pseudonyms)


def test_refusal_names_the_fields_holding_personal_data() -> None:
    fields = {
        "subject": "Horaires de la mairie",
        "recipient": {"name": "M. Jean Dupont", "address": "12 rue Jean Jaurès"},
        "points": ["Remercier l'usager.", "Le rappeler au 06 12 34 56 78."],
        "signatory": {"name": "Nathalie Leprévost", "title": "Maire"},
    }
    assert fields_with_personal_data(fields, ["Nathalie Leprévost", "Maire"]) == [
        "recipient.name",
        "recipient.address",
        "points[1]",
    ]


def test_the_model_is_loaded_once_whatever_the_threads() -> None:
    models: list[object] = []
    threads = [threading.Thread(target=lambda: models.append(detection.model())) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(m) for m in models}) == 1


def test_a_conversation_resent_is_read_by_the_model_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The model's findings are remembered by digest: the history a conversation sends again
    is not read again, and what is found (and protected) stays the same."""
    text = "Réponds à Mme Odile Fontanel, arrivée en 2019, au sujet de sa demande."
    first = Pseudonyms(["Commune de Rouen"]).protect(text)
    assert first == "Réponds à Mme [PERSONNE_1], arrivée en 2019, au sujet de sa demande."

    def unread(*_: object, **__: object) -> None:
        raise AssertionError("the model read a text it had already read")

    monkeypatch.setattr(detection, "model", unread)
    assert Pseudonyms(["Commune de Rouen"]).protect(text) == first
    # The commune's protected names still apply on a remembered text.
    assert Pseudonyms(["Odile Fontanel"]).protect(text) == text


def test_the_model_memory_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(detection, "MODEL_MEMORY", 2)
    monkeypatch.setattr(detection, "_model_memory", type(detection._model_memory)())
    for index in range(5):
        detection.detect(f"Le dossier numéro {index} de Mme Odile Fontanel.")
    assert len(detection._model_memory) == 2


def test_only_short_texts_the_model_has_read_are_quick() -> None:
    read = "Écris à Mme Odile Fontanel au sujet du cimetière."
    unread = "Écris à M. Gaspard Rivoal au sujet de la cantine."
    detection._model_memory.clear()
    pseudonyms = Pseudonyms()
    messages = [{"role": "user", "content": [{"type": "text", "text": read}]}]
    assert not pseudonyms.quick(messages)
    pseudonyms.protect(read)
    assert pseudonyms.quick(messages)
    assert Pseudonyms().quick(messages)  # the model's reading outlives the request
    assert not Pseudonyms().quick([*messages, {"role": "user", "content": unread}])
    long_text = read * 200
    detection.detect(long_text)
    assert not Pseudonyms().quick([{"role": "user", "content": long_text}])
