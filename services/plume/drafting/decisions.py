"""The articles of a délibération: each decision as the conseil votes it (« de fixer … »), and
what the matter adds when the request leaves it out (a tranche of the « cantine à 1 € » grid,
the L. 332-8 mentions of a post, the contrat d'engagement républicain of a subsidy). Nothing is
invented: what the request does not give is [À COMPLÉTER]."""

from __future__ import annotations

import re
import unicodedata
from typing import Any

TO_COMPLETE = "[À COMPLÉTER]"

# A beneficiary under the loi de 1901 (a public body signs no contrat d'engagement
# républicain), in folded text (lower case, no accents).
ASSOCIATION = re.compile(
    r"\bassociations?\b|\bcomites? des fetes\b|\bclubs?\b|\bamicales?\b|\bunion sportive\b"
    r"|\bfoyers? rura(?:l|ux)\b|\bsocietes? de (?:chasse|peche)\b|\bharmonie\b|\bfanfare\b"
)
_PRICE = re.compile(r"(\d{1,3}(?:[,.]\d{1,2})?)\s?€")
_TITLE = re.compile(r"^(?:M|MM|Mme|Mmes|Mlle|Me|Dr)\.?\s|^(?:Madame|Monsieur)\s")


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def lower_first(text: str) -> str:
    # « M. Julien Marchand » keeps its capital after « Considérant que ».
    if _TITLE.match(text):
        return text
    if len(text) > 1 and text[0].isupper() and not text[1].isupper():
        return text[0].lower() + text[1:]
    return text


def decision(text: str) -> str:
    """'Fixer le prix…' reads 'de fixer le prix…' after 'DÉCIDE :'."""
    first = _fold(text.split(" ", 1)[0]).rstrip(",;:")
    if re.fullmatch(r"[a-z]+(er|ir|re|oir)", first):
        body = lower_first(text)
        return ("d'" if first[:1] in "aeiouyh" else "de ") + body
    return text


def matter_articles(data: dict[str, Any], matters: set[str]) -> list[str]:
    """What the délibération's matter requires and its decisions do not say."""
    return [*_canteen(data), *_employment(data), *_subsidy(data, matters)]


def _canteen(data: dict[str, Any]) -> list[str]:
    """The State's « cantine à 1 € » aid needs at least three income-based tranches, one at
    1 € or less and one above (the grid must not lose the aid for want of a tranche)."""
    everything = _fold(" ".join([data["subject"], data["context"], *data["decisions"]]))
    if "cantine a 1" not in everything and "tarification sociale" not in everything:
        return []
    children = [d for d in data["decisions"] if "adulte" not in _fold(d)]
    # A meal's price, not a quotient familial threshold (« inférieur à 700 € »).
    amounts = (float(p.replace(",", ".")) for d in children for p in _PRICE.findall(d))
    prices = {amount for amount in amounts if amount < 20}
    if len(prices) >= 3:
        return []
    return [
        "Pour ouvrir droit à l'aide de l'État dite « cantine à 1 € », la grille comporte au moins "
        "trois tranches établies selon les revenus des familles, dont une à 1 € au plus et une "
        f"au-delà de 1 € : tranche manquante et ses seuils de quotient familial : {TO_COMPLETE}."
    ]


def _employment(data: dict[str, Any]) -> list[str]:
    everything = _fold(" ".join([*data.get("legal_bases", []), *data["decisions"]]))
    if "l. 332-8" not in everything and "l 332-8" not in everything:
        return []
    return [
        "L'emploi peut être pourvu par un agent contractuel sur le fondement de l'article "
        f"L. 332-8 du Code général de la fonction publique ; motif : {TO_COMPLETE} ; fonctions : "
        f"{TO_COMPLETE} ; niveau de recrutement : {TO_COMPLETE} ; rémunération : {TO_COMPLETE}."
    ]


def _subsidy(data: dict[str, Any], matters: set[str]) -> list[str]:
    """An association that receives a subsidy has signed the contrat d'engagement
    républicain (loi 2000-321, art. 10-1): the payment depends on it."""
    everything = _fold(" ".join([data["subject"], data["context"], *data["decisions"]]))
    if "subvention" not in matters or not ASSOCIATION.search(everything):
        return []
    if "engagement republicain" in everything:
        return []
    return [
        "Le versement de la subvention est subordonné à la souscription et au respect, par le "
        "bénéficiaire, du contrat d'engagement républicain prévu à l'article 10-1 de la loi "
        "n° 2000-321 du 12 avril 2000 ; à défaut, la subvention est restituée."
    ]
