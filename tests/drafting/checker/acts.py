"""An arrêté and a délibération that pass every legal check, and the helpers that spoil and
check them: what the legal checks' tests start from."""

from __future__ import annotations

from typing import Any

from plume.drafting.checker import CheckContext, check_legality
from plume.drafting.document import DraftWarning
from plume.drafting.parsing import parse_act

RECOURS = (
    "*{act} peut faire l'objet d'un recours contentieux devant le tribunal administratif de "
    "Rouen dans un délai de deux mois à compter de sa publication ou de sa notification.*"
)

ARRETE = f"""# Arrêté du maire n° 2027-014

## Interdiction de la circulation et du stationnement place de la Mairie à l'occasion du vide-greniers

Le Maire de la commune de La Haye,

Vu le Code général des collectivités territoriales, notamment ses articles L. 2212-1, L. 2212-2 et L. 2213-1 ;

Vu le Code de la route, notamment ses articles L. 325-1, R. 411-8 et R. 417-10 ;

Vu la demande du Comité des fêtes du 2 mai 2027 ;

Considérant que le Comité des fêtes organise son vide-greniers annuel le dimanche 6 juin 2027 sur la place de la Mairie, voie communale située en agglomération ;

Considérant qu'il appartient au maire d'assurer la sécurité des exposants et des visiteurs ;

**ARRÊTE**

**Article 1er** : Le dimanche 6 juin 2027, de 5 h à 20 h, la circulation et le stationnement sont interdits place de la Mairie, sauf véhicules des exposants, de secours et de police.

**Article 2** : Tout véhicule en stationnement gênant sera mis en fourrière.

**Article 3** : La secrétaire générale de mairie et le commandant de la brigade de gendarmerie sont chargés, chacun en ce qui le concerne, de l'exécution du présent arrêté, qui sera publié sous forme électronique sur le site internet de la commune.

Fait à La Haye, le 20 mai 2027

Le Maire,
Jean-Marc Gaillon

Acte certifié exécutoire, publié le ____________.

{RECOURS.format(act="Le présent arrêté")}
"""  # noqa: E501

ARRETE_FIELDS: dict[str, Any] = {
    "kind": "arrete",
    "subject": "Interdiction de la circulation et du stationnement pour le vide-greniers",
    "context": "Le Comité des fêtes organise son vide-greniers le 6 juin 2027.",
    "provisions": ["La circulation et le stationnement sont interdits place de la Mairie."],
    "start_date": "2027-06-06",
    "end_date": "2027-06-06",
}

DELIBERATION = f"""# Délibération n° 2027-031 du conseil municipal de La Haye

## Tarifs de la restauration scolaire pour l'année scolaire 2027-2028

Séance du 24 juin 2027

Le conseil municipal de la commune de La Haye, convoqué le 17 juin 2027, s'est réuni le 24 juin 2027 sous la présidence de Jean-Marc Gaillon, Maire.

Conseillers en exercice : 15. Présents : 11. Représentés : 1 (Mme Durand a donné pouvoir à M. Leroy). Votants : 12.

Secrétaire de séance : Mme Claire Petit.

### Exposé

Le prix du repas facturé par le prestataire passe de 3,85 € à 4,05 € au 1er septembre 2027.

Vu le Code général des collectivités territoriales, notamment son article L. 2121-29 ;

Vu le Code de l'éducation, notamment ses articles L. 131-13, R. 531-52 et R. 531-53 ;

Considérant l'exposé qui précède ;

Après en avoir délibéré, le conseil municipal, à main levée, **DÉCIDE** :

**Article 1er** : De fixer le prix du repas selon trois tranches de quotient familial : 1 €, 2,50 € et 3,60 €.

**Article 2** : De dire que ces tarifs s'appliquent à compter du 1er septembre 2027.

Votes : pour 11, contre 0, abstentions 1.

Fait à La Haye, le 24 juin 2027

Le Maire, Jean-Marc Gaillon — Le secrétaire de séance, Claire Petit

Transmis en préfecture le ____________ ; publié sous forme électronique le ____________ ; acte certifié exécutoire.

{RECOURS.format(act="La présente délibération")}
"""  # noqa: E501

DELIBERATION_FIELDS: dict[str, Any] = {
    "kind": "deliberation",
    "subject": "Tarifs de la restauration scolaire",
    "context": "Le prix du repas facturé par le prestataire augmente.",
    "decisions": ["Fixer le prix du repas."],
    "session_date": "2027-06-24",
}


def check(
    kind: str, text: str, fields: dict[str, Any] | None = None, **settings: Any
) -> list[DraftWarning]:
    sections, _ = parse_act(kind, text)
    default = {"arrete": ARRETE_FIELDS, "deliberation": DELIBERATION_FIELDS}.get(kind, {})
    context = CheckContext(
        kind=kind,
        text=text,
        sections=sections,
        fields=default if fields is None else fields,
        **settings,
    )
    return check_legality(context)


def legal_codes(
    kind: str, text: str, fields: dict[str, Any] | None = None, **settings: Any
) -> list[str]:
    return [w.code for w in check(kind, text, fields, **settings)]


def replaced(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new)
