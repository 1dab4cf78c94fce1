"""The visas: each text cited once, in the order of the norms, and the matter's usual bases."""

from __future__ import annotations

import re
from dataclasses import dataclass

from plume.drafting.checker.codes import DUPLICATE_VISA, LEGAL_BASIS_SUSPECT, VISA_ORDER, warning
from plume.drafting.checker.context import CheckContext, fold
from plume.drafting.document import DraftWarning

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


@dataclass(frozen=True, slots=True)
class MatterBasis:
    """A matter recognised in the request, and the text its visas are expected to cite."""

    matter: str
    recognised: re.Pattern[str]
    expected: re.Pattern[str]
    visa: str
    source: str
    kinds: tuple[str, ...] = ("arrete", "deliberation")


# Folded patterns. Mirrors the legal bases by matter the offline templates use.
MATTER_BASES: tuple[MatterBasis, ...] = (
    MatterBasis(
        "une occupation du domaine public",
        re.compile(
            r"echafaudage|permission de voirie|occupation du domaine public|\bterrasse\b"
            r"|\bbenne\b|permis de stationnement|emprise sur (?:le )?(?:trottoir|domaine)"
        ),
        re.compile(r"propriete des personnes publiques[^;]{0,120}l\. ?2122-1\b|\bl\. ?2122-1 a"),
        "Vu le Code général de la propriété des personnes publiques, notamment ses articles "
        "L. 2122-1 à L. 2122-3 et L. 2125-1 ;",
        "CGPPP, art. L. 2122-1 à L. 2122-3",
        ("arrete",),
    ),
    MatterBasis(
        "un chemin rural",
        re.compile(r"chemins? ruraux?|chemin rural"),
        re.compile(r"code rural[^;]{0,120}161-5|\bl\. ?161-5\b"),
        "Vu le Code rural et de la pêche maritime, notamment son article L. 161-5 ;",
        "Code rural et de la pêche maritime, art. L. 161-5",
        ("arrete",),
    ),
    MatterBasis(
        "une mise en fourrière",
        re.compile(r"fourriere"),
        re.compile(r"\bl\. ?325-1\b"),
        "Vu le Code de la route, notamment ses articles L. 325-1 et R. 417-10 ;",
        "Code de la route, art. L. 325-1",
        ("arrete",),
    ),
    MatterBasis(
        "la restauration scolaire",
        re.compile(r"restauration scolaire|\bcantine\b"),
        re.compile(r"code de l'education|\br\. ?531-52\b"),
        "Vu le Code de l'éducation, notamment ses articles L. 131-13 et R. 531-52 et R. 531-53 ;",
        "Code de l'éducation, art. R. 531-52 et R. 531-53",
        ("deliberation",),
    ),
)


def check_visas(ctx: CheckContext) -> list[DraftWarning]:
    if not ctx.is_act:
        return []
    visas = [_normalised(visa) for visa in ctx.sections.visas]
    return [*_duplicates(visas), *_order(ctx, visas), *_legal_bases(ctx, visas)]


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


def _legal_bases(ctx: CheckContext, visas: list[str]) -> list[DraftWarning]:
    matter = ctx.request_text() or fold(ctx.sections.title or "")
    cited = " ; ".join(visas)
    warnings = []
    for basis in MATTER_BASES:
        if ctx.kind not in basis.kinds or not basis.recognised.search(matter):
            continue
        if basis.expected.search(cited):
            continue
        warnings.append(
            warning(
                LEGAL_BASIS_SUSPECT,
                f"L'acte semble porter sur {basis.matter}, mais ses visas ne citent pas le "
                f"texte qui la régit : est-ce bien le cas ? Si oui, ajoutez « {basis.visa} » "
                "et vérifiez que la mesure repose sur cette base.",
                basis.source,
            )
        )
    return warnings
