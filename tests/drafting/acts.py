"""A complete arrêté and délibération as a model would write them, and ways to spoil them:
what the parsing and checker tests start from."""

from __future__ import annotations

from plume.drafting.checker import check_act
from plume.drafting.parsing import parse_act

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
