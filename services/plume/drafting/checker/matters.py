"""Checks tied to one matter, where a draft can lose money or rest on the wrong authority: the
State's « cantine à 1 € » grid, the contrat d'engagement républicain of a subsidised
association, and the questions of competence of data/competence.yaml."""

from __future__ import annotations

import re

from plume.drafting.checker.codes import (
    AUTHORITY_COMPETENCE,
    CANTEEN_TRANCHES,
    REPUBLICAN_COMMITMENT,
    warning,
)
from plume.drafting.checker.context import PLACEHOLDER, CheckContext, fold
from plume.drafting.competence import questions_for
from plume.drafting.decisions import ASSOCIATION
from plume.drafting.document import DraftWarning

_CANTEEN = re.compile(r"\bcantine|restauration scolaire|\brepas\b")
_SOCIAL_PRICING = re.compile(r"cantine a 1 ?(?:€|euro)|tarification sociale")
_PRICE = re.compile(r"(?<![\d,.])(\d{1,2}(?:[,.]\d{1,2})?) ?(?:€|euros?\b)")
_PRICED = re.compile(r"\brepas\b|\btarifs?\b|\bprix\b|\btranches?\b")
# Prices that are not a child's meal.
_NOT_A_CHILD = re.compile(r"\badultes?\b|enseignants?|\bpersonnels?\b|commensa|\bagents?\b")
_SENTENCE = re.compile(r"(?<=[.;])\s+|\n+")
MAX_MEAL_PRICE = 20.0

_SUBSIDY = re.compile(r"\bsubvention")
_REPUBLICAN = re.compile(r"engagement republicain")


def check_matters(ctx: CheckContext) -> list[DraftWarning]:
    return [*_canteen(ctx), *_republican_commitment(ctx), *_competence(ctx)]


def _child_prices(ctx: CheckContext) -> list[float]:
    """The prices of a child's meal the dispositif of the délibération sets, each once."""
    prices: list[float] = []
    for article in ctx.articles_text():
        for sentence in _SENTENCE.split(article):
            folded = fold(sentence)
            # A reminder still to complete is not a tariff.
            if PLACEHOLDER.search(sentence) or not _PRICED.search(folded):
                continue
            if _NOT_A_CHILD.search(folded):
                continue
            for found in _PRICE.findall(folded):
                value = float(found.replace(",", "."))
                if value < MAX_MEAL_PRICE and value not in prices:
                    prices.append(value)
    return prices


def _canteen(ctx: CheckContext) -> list[DraftWarning]:
    if not ctx.deliberation or not _CANTEEN.search(ctx.request_text()):
        return []
    if not _SOCIAL_PRICING.search(ctx.folded):
        return []
    prices = _child_prices(ctx)
    if len(prices) >= 3 and min(prices) <= 1 < max(prices):
        return []
    listed = ", ".join(f"{p:.2f} €".replace(".", ",") for p in sorted(prices)) or "aucun"
    return [
        warning(
            CANTEEN_TRANCHES,
            "La délibération invoque la « cantine à 1 € », mais sa grille pour les enfants ne "
            f"compte que {len(prices)} tarif(s) ({listed}) : l'aide de l'État exige au moins "
            "trois tranches établies selon les revenus ou le quotient familial, dont une à "
            "1 € au plus et une au-delà de 1 €. Ajoutez la tranche manquante et ses seuils, "
            "ou retirez la référence au dispositif.",
        )
    ]


def _republican_commitment(ctx: CheckContext) -> list[DraftWarning]:
    request = ctx.request_text()
    if not ctx.deliberation or not _SUBSIDY.search(request):
        return []
    if not ASSOCIATION.search(request) or _REPUBLICAN.search(ctx.folded):
        return []
    return [
        warning(
            REPUBLICAN_COMMITMENT,
            "Une association qui demande une subvention doit souscrire le contrat "
            "d'engagement républicain : vérifiez qu'elle l'a fait et mentionnez-le, par exemple "
            "« Le versement est subordonné au respect par l'association du contrat "
            "d'engagement républicain qu'elle a souscrit ». Une association qui ne le respecte "
            "pas doit restituer la subvention.",
        )
    ]


def _competence(ctx: CheckContext) -> list[DraftWarning]:
    return [
        warning(AUTHORITY_COMPETENCE, question.question, question.source)
        for question in questions_for(ctx.kind, ctx.fields, ctx.text)
    ]
