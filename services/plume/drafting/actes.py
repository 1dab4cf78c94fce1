"""The ACTES nomenclature and the rules that give each drafted act its matière for @CTES.

The table in data/actes_nomenclature.json is the national common core of the ACTES nomenclature,
levels 1 (9 matières) and 2 (sous-matières), as the ministère de l'Intérieur distributes it to the
@CTES transmission platforms: the codes and labels printed on the préfecture's accusés de réception
("Matière : 6.1-Police municipale"). It was taken from that file as reproduced by several
independent public @CTES clients (S²LOW/Pastell tooling), which agree on every code and label.
That file is unaccented ASCII: accents, apostrophes and capitals follow French usage here and the
"pourvoirs" typo of matière 6 is corrected; the wording is otherwise the ministry's (6.2 still
says "conseil général"). The finer local levels a préfecture may add are not included.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from importlib.resources import files

from plume.drafting.document import ACT_KINDS, ActeNature

FALLBACK_CODE = "9.1"


@dataclass(frozen=True, slots=True)
class NomenclatureEntry:
    code: str
    label: str

    @property
    def parent(self) -> str | None:
        """The matière of a sous-matière; None for a matière."""
        head, dot, _ = self.code.partition(".")
        return head if dot else None


@cache
def entries() -> tuple[NomenclatureEntry, ...]:
    """Every matière and sous-matière, in the order of the table."""
    resource = files("plume.drafting") / "data" / "actes_nomenclature.json"
    raw: object = json.loads(resource.read_text(encoding="utf-8"))
    if not isinstance(raw, list):
        raise ValueError("actes_nomenclature.json must hold a list")
    table: list[NomenclatureEntry] = []
    for item in raw:
        if not (
            isinstance(item, dict)
            and isinstance(item.get("code"), str)
            and isinstance(item.get("label"), str)
        ):
            raise ValueError(f"actes_nomenclature.json: malformed entry {item!r}")
        table.append(NomenclatureEntry(code=item["code"], label=item["label"]))
    return tuple(table)


@cache
def _labels() -> dict[str, str]:
    return {entry.code: entry.label for entry in entries()}


def label_for(code: str) -> str | None:
    return _labels().get(code.strip())


def is_known(code: str) -> bool:
    return label_for(code) is not None


def _nature(code: str) -> ActeNature:
    return ActeNature(code=code, label=_labels()[code])


# --- Normalisation -------------------------------------------------------------------------------

_LIGATURES = str.maketrans({"œ": "oe", "Œ": "oe", "æ": "ae", "Æ": "ae"})
_TOKEN = re.compile(r"[a-z0-9]+")
# Field-level separator: two spaces, so that a keyword never matches across two fields.
_FIELD_SEPARATOR = "  "


def _singular(token: str) -> str:
    # Dropping a final s/x on both the text and the keywords makes "tarif" match "tarifs" without
    # listing every plural; tokens of four letters or fewer keep theirs so that "plus" never
    # becomes the acronym "plu".
    return token[:-1] if len(token) > 4 and token[-1] in "sx" else token


def normalize(text: str) -> str:
    """Lower case, no accents, no punctuation, plurals folded: the form keywords are matched in."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_LIGATURES).casefold())
    bare = "".join(char for char in decomposed if not unicodedata.combining(char))
    return " ".join(_singular(token) for token in _TOKEN.findall(bare))


def _strings(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


def _searchable(values: Iterable[object]) -> str:
    pieces = (normalize(text) for value in values for text in _strings(value))
    return f" {_FIELD_SEPARATOR.join(pieces)} "


def _contains(text: str, keyword: str) -> bool:
    return f" {keyword} " in text


# --- Rules ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Rule:
    code: str
    keywords: tuple[str, ...]
    kinds: frozenset[str]
    weights: tuple[int, ...]


def _specificity(keyword: str) -> int:
    # "permis de stationnement" must outweigh the "stationnement" it contains, so a keyword
    # counts once per meaningful word in it (articles and prepositions left out).
    return sum(1 for word in keyword.split() if len(word) > 2) or 1


def _rule(code: str, *keywords: str, kinds: frozenset[str] = ACT_KINDS) -> _Rule:
    normalized = tuple(normalize(keyword) for keyword in keywords)
    return _Rule(code, normalized, kinds, tuple(_specificity(keyword) for keyword in normalized))


# Matières 1 to 7 (and 9.4) say what an act legally does; 8 and 9 only say in which field. A
# subsidy to the school cooperative is 7.5, not 8.1, so these rules are tried first and the
# thematic ones only when none of them matched. Among equal scores the earlier rule wins, hence
# vœux, subsidies and tariffs come first: "tarifs de location de la salle" fixes prices (7.10)
# more than it lets a hall (3.3).
_LEGAL_NATURE_RULES: tuple[_Rule, ...] = (
    _rule("9.4", "vœu", "vœux", "motion", "motion de soutien"),
    _rule(
        "7.5",
        "subvention",
        "subventions",
        "subvention exceptionnelle",
        "subvention de fonctionnement",
        "aide financière",
        "demande de subvention",
        "DETR",
        "DSIL",
        "dotation d'équipement des territoires ruraux",
        "6574",
        "L. 2311-7",
    ),
    # Tariffs and fees for a public service (canteen, hall hire, concessions, droits de place)
    # are neither budget decisions (7.1) nor taxation (7.2 is for impositions: rates, taxe
    # d'aménagement, exonérations); a redevance pour service rendu has no sous-matière of its own,
    # so the official catch-all of Finances locales, 7.10 Divers, is the one that fits.
    _rule(
        "7.10",
        "tarif",
        "tarifs",
        "tarification",
        "tarif réduit",
        "redevance",
        "prix du repas",
        "prix des repas",
        "quotient familial",
        "droit de place",
        "droits de place",
        "régie de recettes",
        "régie d'avances",
        "admission en non-valeur",
        "créances éteintes",
        "durée d'amortissement",
        "amortissements",
        "M57",
        "gratuité",
    ),
    _rule(
        "1.1",
        "marché public",
        "marchés publics",
        "marché de travaux",
        "marché de fournitures",
        "marché de services",
        "procédure adaptée",
        "appel d'offres",
        "accord-cadre",
        "avenant au marché",
        "attribution du marché",
        "code de la commande publique",
    ),
    _rule(
        "1.2",
        "délégation de service public",
        "DSP",
        "concession de service",
        "contrat de concession",
        "affermage",
    ),
    _rule("1.3", "convention de mandat", "mandat de maîtrise d'ouvrage"),
    _rule(
        "1.4",
        "contrat de prestation",
        "convention de prestation",
        "contrat de maintenance",
        "contrat d'entretien",
    ),
    _rule("1.5", "transaction", "protocole transactionnel", "protocole d'accord transactionnel"),
    _rule("1.6", "maîtrise d'œuvre", "maître d'œuvre"),
    _rule(
        "2.1",
        "plan local d'urbanisme",
        "PLU",
        "PLUi",
        "carte communale",
        "SCoT",
        "document d'urbanisme",
        "modification simplifiée",
        "révision du plan",
        "PADD",
    ),
    _rule(
        "2.2",
        "permis de construire",
        "permis d'aménager",
        "permis de démolir",
        "déclaration préalable",
        "certificat d'urbanisme",
        "autorisation d'urbanisme",
        "droit des sols",
    ),
    _rule(
        "2.3",
        "droit de préemption",
        "préemption",
        "déclaration d'intention d'aliéner",
        "DIA",
    ),
    _rule(
        "3.1",
        "acquisition",
        "acquérir",
        "acquisition amiable",
        "bien sans maître",
        "biens sans maître",
    ),
    _rule("3.2", "aliénation", "cession", "céder", "vente du terrain", "vente d'un terrain"),
    _rule("3.3", "bail", "location", "loyer", "louer", "bail commercial"),
    _rule("3.4", "limites territoriales", "limite communale", "limites communales"),
    # A permission de voirie or a permis de stationnement authorises a private occupation of the
    # public domain (the scaffolding of a resident, a terrace): managing the domain, not policing
    # traffic, even when the permission also says how pedestrians get past it.
    _rule(
        "3.5",
        "permission de voirie",
        "permis de stationnement",
        "occupation du domaine public",
        "domaine public",
        "autorisation d'occupation temporaire",
        "AOT",
        "échafaudage",
        "terrasse",
        "étalage",
        "déclassement",
        "classement dans le domaine public",
    ),
    _rule("3.6", "domaine privé", "affouage", "coupe de bois", "bois communaux"),
    _rule(
        "4.1",
        "création de poste",
        "création d'un poste",
        "création d'emploi",
        "création d'un emploi",
        "suppression de poste",
        "suppression d'un poste",
        "suppression d'un emploi",
        "emploi",
        "emploi permanent",
        "tableau des effectifs",
        "tableau des emplois",
        "agent",
        "agents",
        "recrutement",
        "recruter",
        "titulaire",
        "stagiaire",
        "fonctionnaire",
        "titularisation",
        "avancement de grade",
        "promotion interne",
        "cadre d'emplois",
        "temps non complet",
        "adjoint technique",
        "adjoint administratif",
        "adjoint d'animation",
        "rédacteur",
        "ATSEM",
        "code général de la fonction publique",
    ),
    _rule(
        "4.2",
        "contractuel",
        "contractuelle",
        "agent contractuel",
        "non titulaire",
        "contrat à durée déterminée",
        "CDD",
        "vacataire",
        "emploi non permanent",
        "accroissement temporaire d'activité",
        "accroissement saisonnier d'activité",
        "contrat de projet",
        "remplacement d'un agent",
        "remplacement d'un fonctionnaire",
    ),
    _rule("4.3", "fonction publique hospitalière"),
    _rule(
        "4.4",
        "apprenti",
        "apprentissage",
        "service civique",
        "parcours emploi compétences",
        "contrat aidé",
        "agent recenseur",
        "agents recenseurs",
    ),
    _rule(
        "4.5",
        "régime indemnitaire",
        "RIFSEEP",
        "IFSE",
        "complément indemnitaire annuel",
        "indemnités horaires pour travaux supplémentaires",
        "IHTS",
        "prime",
    ),
    _rule(
        "5.1",
        "élection du maire",
        "élection des adjoints",
        "nombre d'adjoints",
        "installation du conseil municipal",
    ),
    _rule(
        "5.2",
        "règlement intérieur du conseil",
        "commission municipale",
        "commissions municipales",
        "fonctionnement du conseil municipal",
    ),
    _rule(
        "5.3",
        "désignation des délégués",
        "désignation d'un délégué",
        "désignation des représentants",
        "désignation d'un représentant",
        "délégué titulaire",
        "délégué suppléant",
        "correspondant défense",
        "correspondant incendie et secours",
    ),
    _rule(
        "5.4",
        "délégation de fonctions",
        "délégation de fonction",
        "délégations du conseil municipal au maire",
        "délégation d'attributions",
        "L. 2122-22",
        "L. 2122-18",
    ),
    _rule("5.5", "délégation de signature"),
    _rule(
        "5.6",
        "indemnités de fonction",
        "indemnité de fonction",
        "formation des élus",
        "mandat local",
        "mandats locaux",
    ),
    _rule(
        "5.7",
        "intercommunalité",
        "communauté de communes",
        "communauté d'agglomération",
        "EPCI",
        "transfert de compétence",
        "CLECT",
        "attribution de compensation",
        "syndicat intercommunal",
        "pacte de gouvernance",
    ),
    _rule(
        "5.8",
        "ester en justice",
        "action en justice",
        "défendre la commune",
        "représenter la commune en justice",
        "constitution de partie civile",
    ),
    # Police municipale is exercised by the maire alone, by arrêté: a délibération about traffic
    # (a plan de circulation, a car park) is a voirie or transport matter instead.
    _rule(
        "6.1",
        "police municipale",
        "pouvoirs de police",
        "police de la circulation",
        "réglementation de la circulation",
        "réglementation temporaire",
        "circulation",
        "stationnement",
        "interdiction de stationner",
        "sens unique",
        "vitesse",
        "alternat",
        "circulation alternée",
        "feux tricolores",
        "déviation",
        "fourrière",
        "manifestation",
        "vide-greniers",
        "brocante",
        "fête",
        "fête foraine",
        "feu d'artifice",
        "course cycliste",
        "fermeture",
        "interdiction d'accès",
        "danger",
        "dangereux",
        "péril",
        "risque",
        "effondrement",
        "éboulement",
        "mise en sécurité",
        "sécurité publique",
        "tranquillité publique",
        "salubrité publique",
        "bruit",
        "nuisances sonores",
        "débit de boissons",
        "buvette",
        "animaux errants",
        "baignade",
        "cimetière",
        "inhumation",
        "exhumation",
        "opérations funéraires",
        "police des funérailles",
        "code de la route",
        "L. 2212-1",
        "L. 2212-2",
        "L. 2213-1",
        "L. 2213-2",
        "L. 2213-4",
        "L. 2213-8",
        "L. 2213-9",
        "R. 411-8",
        "R. 411-25",
        kinds=frozenset({"arrete"}),
    ),
    _rule("6.4", "règlement intérieur", "règlement d'utilisation", "règlement de service"),
    _rule(
        "6.5",
        "état civil",
        "officier d'état civil",
        "liste électorale",
        "listes électorales",
        "au nom de l'État",
    ),
    _rule(
        "7.1",
        "budget primitif",
        "budget supplémentaire",
        "décision modificative",
        "compte administratif",
        "compte de gestion",
        "compte financier unique",
        "affectation du résultat",
        "affectation des résultats",
        "débat d'orientation budgétaire",
        "rapport d'orientation budgétaire",
        "virement de crédits",
        "ouverture de crédits",
        "autorisation de programme",
        "décision budgétaire",
    ),
    _rule(
        "7.2",
        "fiscalité",
        "taux d'imposition",
        "taux des taxes",
        "taxe foncière",
        "taxe d'habitation",
        "taxe d'aménagement",
        "taxe de séjour",
        "exonération",
        "TEOM",
        "CFE",
    ),
    _rule(
        "7.3",
        "emprunt",
        "contrat de prêt",
        "prêt bancaire",
        "ligne de trésorerie",
        "garantie d'emprunt",
        "réaménagement de la dette",
    ),
    _rule(
        "7.4",
        "intervention économique",
        "interventions économiques",
        "aide aux entreprises",
        "immobilier d'entreprise",
    ),
    _rule("7.6", "contribution", "cotisation", "participation au syndicat"),
    _rule("7.7", "avance de trésorerie", "avance remboursable", "avance sur subvention"),
    _rule("7.8", "fonds de concours"),
    _rule(
        "7.9",
        "prise de participation",
        "société d'économie mixte",
        "SEM",
        "société publique locale",
        "SPL",
        "capital social",
    ),
)

_THEME_RULES: tuple[_Rule, ...] = (
    _rule(
        "8.1",
        "école",
        "scolaire",
        "enseignement",
        "périscolaire",
        "cantine",
        "restauration scolaire",
        "regroupement pédagogique",
        "RPI",
    ),
    _rule("8.2", "aide sociale", "action sociale", "CCAS", "centre communal d'action sociale"),
    _rule(
        "8.3",
        "voirie",
        "plan de circulation",
        "circulation",
        "stationnement",
        "voie communale",
        "voies communales",
        "chemin rural",
        "dénomination",
        "numérotage",
        "adressage",
        "trottoir",
        "chaussée",
    ),
    _rule("8.4", "aménagement du territoire", "aménagement du bourg", "revitalisation"),
    _rule("8.5", "logement", "habitat", "politique de la ville", "logement social"),
    _rule("8.6", "formation professionnelle", "insertion professionnelle"),
    _rule("8.7", "transport", "transports", "mobilité", "covoiturage"),
    _rule(
        "8.8",
        "environnement",
        "déchets",
        "ordures ménagères",
        "assainissement",
        "eau potable",
        "service de l'eau",
        "RPQS",
        "eaux pluviales",
        "biodiversité",
        "espaces verts",
        "éclairage public",
        "énergie",
        "GEMAPI",
    ),
    _rule(
        "8.9",
        "culture",
        "culturel",
        "bibliothèque",
        "médiathèque",
        "musée",
        "spectacle",
        "concert",
        "exposition",
    ),
    _rule("9.1", "cimetière", "sport", "tourisme", "jumelage", "fêtes et cérémonies"),
)

_CONTRACT_MARKERS = next(rule.keywords for rule in _LEGAL_NATURE_RULES if rule.code == "4.2")

_SUBJECT_WEIGHT = 3
_BODY_WEIGHT = 1

# Fields that say nothing about what the act decides: who signs, when, how the vote went, and
# the request's own options.
_NON_CONTENT_FIELDS = frozenset(
    {
        "kind",
        "subject",
        "signatory",
        "vote",
        "session_date",
        "start_date",
        "end_date",
        "model_group",
        "stream",
        "max_output_tokens",
    }
)


def _score(rule: _Rule, subject: str, body: str) -> int:
    return sum(
        weight
        * (_SUBJECT_WEIGHT * _contains(subject, keyword) + _BODY_WEIGHT * _contains(body, keyword))
        for keyword, weight in zip(rule.keywords, rule.weights, strict=True)
    )


def _best(rules: Iterable[_Rule], kind: str, subject: str, body: str) -> str | None:
    best_code: str | None = None
    best_score = 0
    for rule in rules:
        if kind not in rule.kinds:
            continue
        score = _score(rule, subject, body)
        if score > best_score:
            best_code, best_score = rule.code, score
    return best_code


def classify(kind: str, fields: Mapping[str, object]) -> ActeNature:
    """The most plausible sous-matière for an act, from the request's own words."""
    if kind not in ACT_KINDS:
        raise ValueError(f"only acts have an ACTES matière, not {kind!r}")
    subject = _searchable([fields.get("subject")])
    body = _searchable(value for key, value in fields.items() if key not in _NON_CONTENT_FIELDS)
    code = (
        _best(_LEGAL_NATURE_RULES, kind, subject, body)
        or _best(_THEME_RULES, kind, subject, body)
        or FALLBACK_CODE
    )
    # Posts are words shared by both statuses; one mention of a contract anywhere decides it.
    if code == "4.1" and any(
        _contains(subject, marker) or _contains(body, marker) for marker in _CONTRACT_MARKERS
    ):
        code = "4.2"
    return _nature(code)


_SUGGESTED_CODE = re.compile(r"\s*(\d{1,2})\.(\d{1,2})(?!\d)")


def merge_suggestion(rule_based: ActeNature, suggested_code: str | None) -> ActeNature:
    """The model's sous-matière when the table knows it, else the rule-based one."""
    if suggested_code is None:
        return rule_based
    # Models write "6.1", "6.1 Police municipale" or a préfecture's local "6.1.2"; the national
    # table stops at level 2, and a matière alone is too coarse to transmit, so keep level 2 only.
    match = _SUGGESTED_CODE.match(suggested_code)
    if match is None:
        return rule_based
    code = f"{int(match[1])}.{int(match[2])}"
    label = label_for(code)
    return rule_based if label is None else ActeNature(code=code, label=label)
