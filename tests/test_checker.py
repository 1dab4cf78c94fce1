"""Parsing of drafted acts into sections, and the act checker's warnings."""

from __future__ import annotations

import random
import time

import pytest

from plume.drafting.checker import CHECK_CODES, check_act
from plume.drafting.document import Sections
from plume.drafting.parsing import UNPARSED_ANSWER, parse_act, parse_act_parts

RECOURS_ARRETE = (
    "*Le présent arrêté peut faire l'objet d'un recours gracieux auprès du maire ou d'un recours "
    "contentieux devant le tribunal administratif de Rouen dans un délai de deux mois à compter "
    "de sa publication ou de sa notification. Le tribunal peut être saisi par l'application "
    "« Télérecours citoyens » (www.telerecours.fr).*"
)

ARRETE = f"""# Arrêté du maire n° 2027-___

## Interdiction de la circulation et du stationnement place de la Mairie à l'occasion du vide-greniers

Le Maire de la commune de La Haye,

Vu le Code général des collectivités territoriales, notamment ses articles L. 2212-1, L. 2212-2 et L. 2213-1 ;

Vu le Code de la route, notamment son article R. 411-8 ;

Considérant que le Comité des fêtes organise son vide-greniers annuel le dimanche 6 juin 2027 sur la place de la Mairie et la rue du Stade ;

Considérant qu'il appartient au maire de prendre les mesures nécessaires pour assurer la sécurité des exposants et des visiteurs ;

**ARRÊTE**

**Article 1er** : Le dimanche 6 juin 2027, de 5 h à 20 h, la circulation et le stationnement sont interdits place de la Mairie et rue du Stade, sauf véhicules des exposants, de secours et de police.

**Article 2** : Une déviation est mise en place par la route de Forges.

**Article 3** : La secrétaire de mairie, le commandant de la brigade de gendarmerie et toute autorité de police sont chargés, chacun en ce qui le concerne, de l'exécution du présent arrêté, qui sera affiché en mairie et sur les lieux.

Fait à La Haye, le ____________

Le Maire,
Jean-Marc Gaillon

{RECOURS_ARRETE}
"""  # noqa: E501

DELIBERATION = """# Délibération du conseil municipal de La Haye

## Tarifs de la restauration scolaire pour l'année scolaire 2027-2028

Séance du 24 juin 2027

Le conseil municipal de la commune de La Haye, régulièrement convoqué, s'est réuni le 24 juin 2027 sous la présidence de Jean-Marc Gaillon, Maire.

Rapporteur : Mme l'adjointe chargée des affaires scolaires

### Exposé

Le prix du repas facturé par le prestataire passe de 3,85 € à 4,05 € au 1er septembre 2027.

La commission des affaires scolaires propose de ne répercuter qu'une partie de la hausse.

Vu le Code général des collectivités territoriales, notamment son article L. 2121-29 ;

Considérant l'exposé qui précède et l'intérêt pour la commune de se prononcer sur cette question ;

Après en avoir délibéré, le conseil municipal **DÉCIDE** :

**Article 1er** : Fixer le prix du repas à 3,60 € pour les enfants scolarisés à l'école de la commune.

**Article 2** : Dire que ces tarifs s'appliquent à compter du 1er septembre 2027.

Votes : pour 11, contre 0, abstentions 1.

Fait à La Haye, le 24 juin 2027

Le Maire,
Jean-Marc Gaillon

*La présente délibération peut faire l'objet d'un recours contentieux devant le tribunal administratif de Rouen dans un délai de deux mois à compter de sa publication.*
"""  # noqa: E501

SIGNATURE = "Fait à La Haye, le ____________\nLe Maire,\nJean-Marc Gaillon"


def codes(kind: str, text: str, tribunal: str = "Rouen") -> list[str]:
    sections, _ = parse_act(kind, text)
    return [w.code for w in check_act(kind, sections, text, tribunal)]


def without(text: str, *snippets: str) -> str:
    for snippet in snippets:
        assert snippet in text, snippet
        text = text.replace(snippet, "")
    return text


def replaced(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new)


# --- Parsing -----------------------------------------------------------------------------------


def test_canonical_arrete_parses_into_every_section() -> None:
    sections, warnings = parse_act("arrete", ARRETE)
    assert warnings == []
    assert sections.title == (
        "Interdiction de la circulation et du stationnement place de la Mairie "
        "à l'occasion du vide-greniers"
    )
    assert sections.visas == [
        "Vu le Code général des collectivités territoriales, notamment ses articles L. 2212-1, "
        "L. 2212-2 et L. 2213-1 ;",
        "Vu le Code de la route, notamment son article R. 411-8 ;",
    ]
    assert [c[:30] for c in sections.considerants] == [
        "Considérant que le Comité des ",
        "Considérant qu'il appartient a",
    ]
    assert [a.number for a in sections.articles] == ["1er", "2", "3"]
    assert sections.articles[1].text == "Une déviation est mise en place par la route de Forges."
    assert sections.articles[0].text.startswith("Le dimanche 6 juin 2027, de 5 h à 20 h")
    assert sections.signature == SIGNATURE
    assert sections.mentions == [RECOURS_ARRETE.strip("*")]


def test_canonical_deliberation_keeps_session_expose_and_vote() -> None:
    sections, warnings = parse_act("deliberation", DELIBERATION)
    assert warnings == []
    assert sections.title == "Tarifs de la restauration scolaire pour l'année scolaire 2027-2028"
    assert len(sections.visas) == 1
    assert len(sections.considerants) == 1
    assert [a.number for a in sections.articles] == ["1er", "2"]
    assert sections.articles[-1].text.endswith("1er septembre 2027.")
    assert sections.signature == "Fait à La Haye, le 24 juin 2027\nLe Maire,\nJean-Marc Gaillon"
    assert sections.mentions[0] == "Séance du 24 juin 2027"
    assert sections.mentions[1].startswith("Le conseil municipal de la commune de La Haye")
    assert sections.mentions[2] == "Rapporteur : Mme l'adjointe chargée des affaires scolaires"
    assert sections.mentions[3] == "Votes : pour 11, contre 0, abstentions 1."
    assert sections.mentions[4].startswith("La présente délibération peut faire l'objet")
    parts = parse_act_parts("deliberation", DELIBERATION)
    assert parts.session == sections.mentions[:3]
    assert parts.votes == ["Votes : pour 11, contre 0, abstentions 1."]
    assert [e[:20] for e in parts.expose] == ["Le prix du repas fac", "La commission des af"]
    assert parts.dispositif == "Après en avoir délibéré, le conseil municipal DÉCIDE :"


LLM_ARRETE_BULLETS = f"""Voici le projet d'arrêté demandé :

**ARRÊTÉ MUNICIPAL N° 2027-___**

**Objet : Interdiction de la circulation et du stationnement place de la Mairie à l'occasion du vide-greniers**

Le Maire de la commune de La Haye,

VU :
- le Code général des collectivités territoriales, notamment ses articles L. 2212-1, L. 2212-2 et L. 2213-1 ;
- le Code de la route, notamment son article R. 411-8 ;

CONSIDÉRANT que le Comité des fêtes organise son vide-greniers annuel le dimanche 6 juin 2027 sur la place de la Mairie et la rue du Stade ;

CONSIDÉRANT qu'il appartient au maire de prendre les mesures nécessaires pour assurer la sécurité des exposants et des visiteurs ;

ARRÊTE :

ARTICLE 1 – Le dimanche 6 juin 2027, de 5 h à 20 h, la circulation et le stationnement sont interdits place de la Mairie et rue du Stade, sauf véhicules des exposants, de secours et de police.

### Article 2

Une déviation est mise en place par la route de Forges.

**Article 3.** La secrétaire de mairie, le commandant de la brigade de gendarmerie et toute autorité de police sont chargés, chacun en ce qui le concerne, de l'exécution du présent arrêté, qui sera affiché en mairie et sur les lieux.

Fait à La Haye, le ____________
Le Maire,
Jean-Marc Gaillon

---

_{RECOURS_ARRETE.strip("*")}_

N'hésitez pas à me demander des ajustements.
"""  # noqa: E501

LLM_ARRETE_HEADINGS = f"""```markdown
# ARRÊTÉ N° 2027-___ : Interdiction de la circulation et du stationnement place de la Mairie à l'occasion du vide-greniers

- VU le Code général des collectivités territoriales, notamment ses articles L. 2212-1, L. 2212-2 et L. 2213-1 ;
- **VU** le Code de la route, notamment son article R. 411-8 ;

**Considérant** que le Comité des fêtes organise son vide-greniers annuel le dimanche 6 juin 2027 sur la place de la Mairie et la rue du Stade ;
**Considérant** qu'il appartient au maire de prendre les mesures nécessaires pour assurer la sécurité des exposants et des visiteurs ;

## ARRÊTE

### Article premier : Le dimanche 6 juin 2027, de 5 h à 20 h, la circulation et le stationnement sont interdits place de la Mairie et rue du Stade, sauf véhicules des exposants, de secours et de police.

### Article 2
Une déviation est mise en place par la route de Forges.

### Article 3
La secrétaire de mairie, le commandant de la brigade de gendarmerie et toute autorité de police sont chargés, chacun en ce qui le concerne, de l'exécution du présent arrêté, qui sera affiché en mairie et sur les lieux.

## Signature

*Fait à La Haye, le ____________*

**Le Maire,**
**Jean-Marc Gaillon**

## Voies et délais de recours

{RECOURS_ARRETE}
```
"""  # noqa: E501


@pytest.mark.parametrize(
    "variant", [LLM_ARRETE_BULLETS, LLM_ARRETE_HEADINGS], ids=["bullets", "headings"]
)
def test_llm_formatting_variants_parse_to_the_same_sections(variant: str) -> None:
    expected, _ = parse_act("arrete", ARRETE)
    sections, warnings = parse_act("arrete", variant)
    assert warnings == []
    assert sections == expected
    assert codes("arrete", variant) == []


@pytest.mark.parametrize(
    ("label", "number"),
    [
        ("**Article 1er** :", "1er"),
        ("**Article 1** :", "1er"),
        ("Article 1<sup>er</sup> –", "1er"),
        ("ARTICLE 1 –", "1er"),
        ("Article premier :", "1er"),
        ("Article I -", "1er"),
        ("### Article 1er", "1er"),
        ("- **Article 1er.**", "1er"),
        ("Art. 1er :", "1er"),
        ("Article unique :", "unique"),
    ],
)
def test_article_labels_are_normalised(label: str, number: str) -> None:
    text = replaced(ARRETE, "**Article 1er** :", label)
    sections, _ = parse_act("arrete", text)
    assert [a.number for a in sections.articles] == [number, "2", "3"]
    assert sections.articles[0].text.startswith("Le dimanche 6 juin 2027")


def test_references_to_articles_do_not_start_articles() -> None:
    text = replaced(
        ARRETE,
        "**Article 2** : Une déviation est mise en place par la route de Forges.",
        "**Article 2** : Une déviation est mise en place par la route de Forges.\n"
        "Article 12 de l'arrêté du 3 mai 2020 : sans objet.\n\n"
        "L'article 1er du présent arrêté ne s'applique pas aux riverains.",
    )
    sections, _ = parse_act("arrete", text)
    assert [a.number for a in sections.articles] == ["1er", "2", "3"]
    assert sections.articles[1].text.endswith("ne s'applique pas aux riverains.")


def test_article_bodies_keep_their_paragraphs_and_lists() -> None:
    text = replaced(
        ARRETE,
        "**Article 2** : Une déviation est mise en place par la route de Forges.",
        "**Article 2** : Une déviation est mise en place :\n"
        "- par la route de Forges ;\n- par le chemin du Moulin.\n\n"
        "Elle est signalée par les services techniques.",
    )
    sections, _ = parse_act("arrete", text)
    assert sections.articles[1].text == (
        "Une déviation est mise en place :\n- par la route de Forges ;\n"
        "- par le chemin du Moulin.\n\nElle est signalée par les services techniques."
    )


def test_closing_mentions_end_the_last_article() -> None:
    text = replaced(
        ARRETE,
        "Fait à La Haye, le ____________",
        "Ampliation sera adressée à :\n\n- M. le commandant de brigade ;\n- M. le Préfet.\n\n"
        "Fait à La Haye, le ____________",
    )
    text = text + (
        "\nTransmis au représentant de l'État le ____.\n\nCertifié exécutoire le ____.\n\n"
        "Document rédigé avec l'assistance d'un système d'intelligence artificielle (Plume).\n"
    )
    sections, _ = parse_act("arrete", text)
    assert sections.articles[-1].text.endswith("affiché en mairie et sur les lieux.")
    assert sections.signature == SIGNATURE
    assert sections.mentions[0] == (
        "Ampliation sera adressée à :\n- M. le commandant de brigade ;\n- M. le Préfet."
    )
    assert sections.mentions[2:] == [
        "Transmis au représentant de l'État le ____.",
        "Certifié exécutoire le ____.",
        "Document rédigé avec l'assistance d'un système d'intelligence artificielle (Plume).",
    ]


@pytest.mark.parametrize(
    "vote",
    [
        "Adopté à l'unanimité.",
        "Pour : 11 – Contre : 0 – Abstention : 1",
        "Votes : pour 11, contre 0, abstentions 1.",
        "La délibération est adoptée par 11 voix pour et 1 abstention.",
    ],
)
def test_deliberation_vote_formats(vote: str) -> None:
    text = replaced(DELIBERATION, "Votes : pour 11, contre 0, abstentions 1.", vote)
    parts = parse_act_parts("deliberation", text)
    assert parts.votes == [vote]
    assert [a.number for a in parts.articles] == ["1er", "2"]
    assert codes("deliberation", text) == []


def test_deliberation_in_the_older_register_style() -> None:
    text = """**EXTRAIT DU REGISTRE DES DÉLIBÉRATIONS DU CONSEIL MUNICIPAL**

**Objet : Attribution d'une subvention exceptionnelle au Comité des fêtes**

L'an deux mille vingt-sept, le huit avril, à vingt heures, le conseil municipal de la commune de La Haye, dûment convoqué, s'est réuni en séance publique sous la présidence de M. Jean-Marc Gaillon, Maire.

Date de convocation : 1er avril 2027

M. le Maire expose au conseil que le Comité des fêtes organise le 150e anniversaire de l'église.
Il sollicite une aide exceptionnelle de 1 500 €.

VU le Code général des collectivités territoriales, notamment son article L. 2311-7 ;

Le conseil municipal, après en avoir délibéré, à l'unanimité des membres présents,

DÉCIDE :

Article 1 : D'attribuer une subvention exceptionnelle de 1 500 € au Comité des fêtes.

Article 2 : De dire que les crédits sont inscrits à l'article 6574 du budget primitif 2027.

Ainsi fait et délibéré les jour, mois et an susdits.
Pour extrait certifié conforme,
Le Maire,
Jean-Marc Gaillon

La présente délibération peut faire l'objet d'un recours devant le tribunal administratif de Rouen dans un délai de deux mois.
"""  # noqa: E501
    parts = parse_act_parts("deliberation", text)
    assert parts.title == "Attribution d'une subvention exceptionnelle au Comité des fêtes"
    assert parts.session[0].startswith("L'an deux mille vingt-sept")
    assert parts.session[1] == "Date de convocation : 1er avril 2027"
    assert parts.expose[0].endswith("Il sollicite une aide exceptionnelle de 1 500 €.")
    assert parts.visas[0].startswith("Vu le Code général")
    assert parts.votes == [
        "Le conseil municipal, après en avoir délibéré, à l'unanimité des membres présents,"
    ]
    assert [a.number for a in parts.articles] == ["1er", "2"]
    assert parts.signature is not None
    assert parts.signature.endswith("Jean-Marc Gaillon")
    # No considérant, but the exposé motivates the decision.
    assert codes("deliberation", text) == []


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "   \n\n  ",
        "Je ne peux pas rédiger cet acte sans plus d'informations.",
        "# Titre\n\n**\n\n---\n\n*\n_\n> \n- \n1.",
        "Article\nArticle L. 2212-2\nArticles 1 à 3\n" + "x" * 50_000,
        "\x00\x01\ufeff\u200b" * 100,
        "Vu " * 5_000,
        "lorem ipsum " * 20_000,
    ],
    ids=["empty", "blank", "refusal", "markdown-only", "no-article", "control", "vu", "long"],
)
def test_unparsable_answers_give_a_warning_not_an_exception(garbage: str) -> None:
    started = time.perf_counter()
    sections, warnings = parse_act("arrete", garbage)
    assert [w.code for w in warnings] == [UNPARSED_ANSWER]
    assert "article" in warnings[0].message
    assert sections.articles == []
    found = check_act("arrete", sections, garbage, "Rouen")
    assert "missing_articles" in [w.code for w in found]
    assert time.perf_counter() - started < 2


def test_other_kinds_are_neither_parsed_nor_checked() -> None:
    assert parse_act("courrier", ARRETE) == (Sections(), [])
    assert check_act("courrier", Sections(), "Madame, Monsieur,", "Rouen") == []


# --- Checker -----------------------------------------------------------------------------------


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


@pytest.mark.parametrize(
    ("heading", "title"),
    [
        (
            "# Arrêté du maire n° [À COMPLÉTER]\n\n## Fermeture du chemin rural",
            "Fermeture du chemin rural",
        ),
        ("# Délibération n° 2027-015 : Tarifs de la cantine", "Tarifs de la cantine"),
        (
            "ARRÊTÉ MUNICIPAL N° 12\n\nPortant fermeture du chemin rural",
            "Portant fermeture du chemin rural",
        ),
        ("# Arrêté portant fermeture du chemin rural", "Arrêté portant fermeture du chemin rural"),
        ("# Arrêté du maire n° 2027-___", "Arrêté du maire n° 2027-___"),
    ],
)
def test_title_is_the_object_rather_than_the_act_header(heading: str, title: str) -> None:
    text = heading + ARRETE[ARRETE.index("\n\nLe Maire de la commune") :]
    assert parse_act("arrete", text)[0].title == title


@pytest.mark.parametrize(
    "text",
    [
        "**ARRÊTE**\n\n**Article 1er** : x\n\nFait " + "à a " * 20_000,
        "# Arrêté du maire de " + "La Haye de " * 20_000,
        "recours " + "tribunal administratif " * 5_000,
        "le conseil municipal " + "a " * 50_000 + " décide :",
        "**ARRÊTE**\n\n**Article 1er** : " + "chargé " * 30_000,
        "Vu x\n" * 20_000 + "**Article 1er** : y\n" * 2_000,
    ],
    ids=["fait", "header", "tribunal", "decide", "charge", "many-lines"],
)
@pytest.mark.parametrize("kind", ["arrete", "deliberation"])
def test_pathological_texts_are_handled_quickly(kind: str, text: str) -> None:
    started = time.perf_counter()
    sections, _ = parse_act(kind, text)
    check_act(kind, sections, text, "Rouen")
    assert time.perf_counter() - started < 2


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


def test_a_note_before_the_act_does_not_hide_its_title() -> None:
    text = "Note : projet à relire.\n\n" + ARRETE
    sections, _ = parse_act("arrete", text)
    assert sections.title is not None
    assert sections.title.startswith("Interdiction de la circulation")
    assert sections.mentions == [RECOURS_ARRETE.strip("*")]


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
