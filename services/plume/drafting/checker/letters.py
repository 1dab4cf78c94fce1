"""Checks of a letter: the salutation suits its recipient, and no third party is named
without need (the recipient may pass the letter on; a resident's name is personal data)."""

from __future__ import annotations

import re

from plume.drafting.checker.codes import PERSONAL_DATA_IN_ACT, SALUTATION_MISMATCH, warning
from plume.drafting.checker.context import CheckContext, fold
from plume.drafting.document import DraftWarning

_APPEL = re.compile(
    r"^[ \t]*((?:madame|monsieur|mesdames|messieurs|cher|ch[eè]re|chers|ch[eè]res)\b[^\n]{0,80}),"
    r"[ \t]*$",
    re.MULTILINE | re.IGNORECASE,
)
# « Monsieur le Préfet », « Madame la Présidente du conseil départemental »: the office is the
# salutation.
_OFFICE = re.compile(r"^(monsieur le|madame la) ([a-z-]+)")
_MADAME = re.compile(r"^(?:mme|madame|mlle|mademoiselle)\b")
_MONSIEUR = re.compile(r"^(?:m\.|monsieur)\s")
_PERSON = re.compile(
    r"\b(?:M\.|Mme|Mlle|Monsieur|Madame)\s+((?:[A-ZÀ-Ý][\w'’-]+)(?:\s+[A-ZÀ-Ý][\w'’-]+){0,2})"
)


def check_letter(ctx: CheckContext) -> list[DraftWarning]:
    if ctx.kind != "courrier":
        return []
    return [*_salutation(ctx), *_third_parties(ctx)]


def _expected(recipient: str) -> tuple[str, str] | None:
    """The salutation a recipient's name calls for, folded and as written."""
    folded = fold(recipient)
    office = _OFFICE.match(folded)
    if office:
        words = recipient.split()[:3]
        return " ".join(office.groups()), " ".join(words)
    if _MADAME.match(folded):
        return "madame", "Madame"
    if _MONSIEUR.match(folded + " "):
        return "monsieur", "Monsieur"
    return None


def _salutation(ctx: CheckContext) -> list[DraftWarning]:
    recipient = ctx.value("recipient", "name")
    expected = _expected(recipient) if isinstance(recipient, str) else None
    found = _APPEL.search(ctx.text.replace("*", ""))
    if expected is None or found is None:
        return []
    written = found.group(1).strip()
    if fold(written) == expected[0] or fold(written).startswith(expected[0] + " "):
        return []
    return [
        warning(
            SALUTATION_MISMATCH,
            f"Le courrier s'ouvre sur « {written}, » alors qu'il s'adresse à {recipient} : "
            f"écrivez « {expected[1]}, » et reprenez la même formule dans la formule de "
            "politesse.",
        )
    ]


def _third_parties(ctx: CheckContext) -> list[DraftWarning]:
    known = fold(
        " ".join(
            str(ctx.value(*path) or "") for path in (("recipient", "name"), ("signatory", "name"))
        )
    )
    named: list[str] = []
    for found in _PERSON.finditer(ctx.text):
        name = found.group(1)
        if fold(name) not in known and name not in named:
            named.append(name)
    if not named:
        return []
    return [
        warning(
            PERSONAL_DATA_IN_ACT,
            f"Le courrier nomme un tiers ({', '.join(named)}) : ne le nommez que si la réponse "
            "l'exige (« le propriétaire des chiens », « votre voisin » suffisent souvent) ; son "
            "nom est une donnée personnelle, et le destinataire peut faire circuler la lettre.",
            "RGPD, art. 5-1-c ; CRPA, art. L. 311-6",
        )
    ]
