"""Parsing of drafted acts into sections (plume.drafting.parsing)."""

from __future__ import annotations

import time

import pytest

from plume.drafting.checker import check_act
from plume.drafting.document import Sections
from plume.drafting.parsing import UNPARSED_ANSWER, parse_act, parse_act_parts
from tests.drafting.acts import (
    ARRETE,
    DELIBERATION,
    RECOURS_ARRETE,
    SIGNATURE,
    codes,
    replaced,
)


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
    assert (
        time.perf_counter() - started < 5
    )  # milliseconds on an idle machine; the linear checks are elsewhere


def test_other_kinds_are_neither_parsed_nor_checked() -> None:
    assert parse_act("courrier", ARRETE) == (Sections(), [])
    assert check_act("courrier", Sections(), "Madame, Monsieur,", "Rouen") == []


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


def test_a_note_before_the_act_does_not_hide_its_title() -> None:
    text = "Note : projet à relire.\n\n" + ARRETE
    sections, _ = parse_act("arrete", text)
    assert sections.title is not None
    assert sections.title.startswith("Interdiction de la circulation")
    assert sections.mentions == [RECOURS_ARRETE.strip("*")]
