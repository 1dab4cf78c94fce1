"""The visas: each text cited once, in the order of the norms, and the matter's usual bases."""

from __future__ import annotations

import re

from plume.drafting.checker.codes import DUPLICATE_VISA, LEGAL_BASIS_SUSPECT, VISA_ORDER, warning
from plume.drafting.checker.context import CheckContext, fold
from plume.drafting.document import DraftWarning
from plume.drafting.legal_bases import Matter, matters_for, matters_for_request

_ALIASES = (
    (re.compile(r"\bc\.? ?g\.? ?c\.? ?t\b\.?"), "code general des collectivites territoriales"),
    (re.compile(r"\bc\.? ?g\.? ?f\.? ?p\b\.?"), "code general de la fonction publique"),
    (
        re.compile(r"\bc\.? ?g\.? ?p\.? ?p\.? ?p\b\.?"),
        "code general de la propriete des personnes publiques",
    ),
)
# Where the name of a text ends in a visa.
_NAME_END = re.compile(
    r",| notamment| en particulier| articles?\b| ses | son | ;| \(| l\. | r\. | d\. "
)
_RANKS = (
    (re.compile(r"^(?:la )?constitution|^(?:le )?reglement \(?ue|^(?:la )?directive"), 0),
    (re.compile(r"^(?:le )?code\b|^(?:la )?loi\b|^(?:l')?ordonnance\b"), 1),
    (re.compile(r"^(?:le )?decret\b"), 2),
    (re.compile(r"^(?:l')?arrete\b"), 3),
    (re.compile(r"^(?:la )?deliberation\b"), 4),
    (
        re.compile(
            r"^(?:la |le |l')?(?:demande|avis|courrier|requete|rapport|convention|budget"
            r"|dossier|proposition|lettre|declaration)\b"
        ),
        5,
    ),
)
_RANK_NAMES = (
    "les traités et règlements européens",
    "les codes, lois et ordonnances",
    "les décrets",
    "les arrêtés",
    "les délibérations",
    "les demandes, avis et pièces du dossier",
)


def check_visas(ctx: CheckContext) -> list[DraftWarning]:
    if not ctx.is_act:
        return []
    visas = [_normalised(visa) for visa in ctx.sections.visas]
    return [*_duplicates(visas), *_order(ctx, visas), *_legal_bases(ctx)]


def _normalised(visa: str) -> str:
    text = fold(visa)
    text = text[3:] if text.startswith("vu ") else text
    for pattern, name in _ALIASES:
        text = pattern.sub(name, text)
    return text


def _cited_text(visa: str) -> str | None:
    """The code a visa cites ('code de la route'), None for other texts."""
    body = re.sub(r"^(?:le |la |l')", "", visa)
    if not body.startswith("code "):
        return None
    end = _NAME_END.search(body)
    return (body[: end.start()] if end else body).strip(" ;.")


def _duplicates(visas: list[str]) -> list[DraftWarning]:
    seen: set[str] = set()
    repeated: list[str] = []
    for visa in visas:
        name = _cited_text(visa) or visa.strip(" ;.")
        if name in seen and name not in repeated:
            repeated.append(name)
        seen.add(name)
    if not repeated:
        return []
    names = ", ".join(f"« {name[:1].upper()}{name[1:]} »" for name in repeated)
    return [
        warning(
            DUPLICATE_VISA,
            f"Le même texte est visé plusieurs fois ({names}) : regroupez ses articles en un "
            "seul visa (« Vu le Code …, notamment ses articles … et … ; »).",
        )
    ]


def _rank(visa: str) -> int | None:
    for pattern, rank in _RANKS:
        if pattern.search(visa):
            return rank
    return None


def _order(ctx: CheckContext, visas: list[str]) -> list[DraftWarning]:
    highest = -1
    for index, visa in enumerate(visas):
        rank = _rank(visa)
        if rank is None:
            continue
        if rank < highest:
            quoted = ctx.sections.visas[index].strip()[:80]
            return [
                warning(
                    VISA_ORDER,
                    f"Les visas ne suivent pas la hiérarchie des normes (« {quoted} » vient "
                    f"après un texte de rang inférieur) : classez-les dans l'ordre "
                    f"{', '.join(_RANK_NAMES[1:])}.",
                )
            ]
        highest = rank
    return []


def matters(ctx: CheckContext) -> list[Matter]:
    """The matters of the act, from the request when there is one, else from the text."""
    if isinstance(ctx.fields.get("subject"), str):
        return matters_for_request(ctx.kind, ctx.fields)
    return matters_for(ctx.kind, ctx.sections.title or "", ctx.text)


def _article(text: str) -> str:
    first = fold(text).split(" ", 1)[0]
    if first in ("code", "decret", "budget", "tableau"):
        return "le "
    if first in ("loi", "deliberation", "convention", "demande"):
        return "la "
    return "l'" if first[:1] in tuple("aeiouy") else ""


def _legal_bases(ctx: CheckContext) -> list[DraftWarning]:
    # One warning for the act, naming each matter whose usual bases are not cited.
    found = [(m, m.missing_from(ctx.sections.visas)) for m in matters(ctx)]
    lacking = [(matter, missing) for matter, missing in found if missing]
    if not lacking:
        return []
    labels = " et ".join(f"« {matter.label} »" for matter, _ in lacking)
    visas = " ; ".join(
        f"« Vu {_article(visa.text)}{visa.text} »" for _, missing in lacking for visa in missing
    )
    return [
        warning(
            LEGAL_BASIS_SUSPECT,
            f"L'acte semble relever de {labels}, mais ses visas ne citent pas la base "
            f"habituelle : est-ce bien le cas ? Si oui, ajoutez {visas} et vérifiez que la "
            "mesure repose sur cette base.",
            lacking[0][1][0].source,
        )
    ]
