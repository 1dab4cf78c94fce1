"""The séance of a délibération as the registre shows it: convocation, members in office,
present, represented and voting, the quorum, the mode of vote, the secrétaire de séance and
the two signatures (CGCT L. 2121-10 to L. 2121-26; co-signature since 1 July 2022).

Nothing is inferred: a count or a name the request does not give is [À COMPLÉTER].
"""

from __future__ import annotations

from datetime import date
from typing import Any

from plume.french import french_day

TO_COMPLETE = "[À COMPLÉTER]"

_VOTE_MODES = {
    "main_levee": "à main levée",
    "scrutin_public": "au scrutin public",
    "scrutin_secret": "au scrutin secret",
}


def _day(value: str | None) -> str:
    if not value:
        return TO_COMPLETE
    try:
        return french_day(date.fromisoformat(value))
    except ValueError:
        return value


def _count(value: int | None) -> str:
    return TO_COMPLETE if value is None else str(value)


def _hour(value: str | None) -> str:
    """« 20 h 00 » from `20:00:00`; the hour of the séance belongs in the registre."""
    if not value:
        return TO_COMPLETE
    hours, _, rest = value.partition(":")
    return f"{int(hours)} h {rest[:2] or '00'}"


def _proxies(seance: dict[str, Any]) -> list[str]:
    """« Pouvoirs : Mme A à M. B ; … » (CGCT L. 2121-20): each pouvoir is named."""
    represented, proxies = seance.get("represented"), seance.get("proxies")
    if proxies:
        named = " ; ".join(f"{p['grantor']} à {p['holder']}" for p in proxies)
        return [f"Pouvoirs : {named}"]
    if represented == 0:
        return []
    return [
        f"Pouvoirs : {TO_COMPLETE} (le nom de chaque conseiller représenté et de son mandataire)"
    ]


def session_lines(data: dict[str, Any], commune: str, president: str) -> list[str]:
    """From « Séance du … » to the secrétaire de séance, one paragraph per line."""
    seance = data.get("session") or {}
    held = _day(data.get("session_date"))
    convened = _day(seance.get("convocation_date"))
    in_office, present = seance.get("members_in_office"), seance.get("present")
    represented = seance.get("represented")
    voting = present + represented if present is not None and represented is not None else None
    if present is None or in_office is None:
        quorum = (
            f"Quorum : {TO_COMPLETE} (la majorité des conseillers en exercice doit être présente, "
            "CGCT, art. L. 2121-17)."
        )
    elif present > in_office // 2:
        quorum = (
            f"Quorum : atteint, {present} conseillers présents sur {in_office} en exercice "
            "(CGCT, art. L. 2121-17)."
        )
    else:
        quorum = (
            f"Quorum : non atteint ({present} présents sur {in_office} en exercice) ; le "
            "conseil ne délibère valablement que sur une nouvelle convocation "
            "(CGCT, art. L. 2121-17)."
        )
    return [
        f"Séance du {held} à {_hour(seance.get('start_time'))}",
        f"Date de convocation : {convened}",
        f"Conseillers en exercice : {_count(in_office)} ; présents : {_count(present)} ; "
        f"représentés : {_count(represented)} ; votants : {_count(voting)}",
        *_proxies(seance),
        quorum,
        f"Le conseil municipal de la commune de {commune}, convoqué le {convened}, s'est réuni "
        f"le {held} sous la présidence de {president}, Maire.",
        f"Secrétaire de séance : {seance.get('secretary') or TO_COMPLETE}",
    ]


def vote_line(data: dict[str, Any]) -> str:
    """« Votes : pour …, contre …, abstentions … », with the mode of vote (L. 2121-21)."""
    vote = data.get("vote")
    mode = _VOTE_MODES.get((data.get("session") or {}).get("vote_mode") or "")
    how = f"vote {mode}" if mode else f"mode de scrutin : {TO_COMPLETE}"
    if vote:
        abstentions = vote.get("abstentions", 0)
        counts = f"pour {vote['for']}, contre {vote['against']}, abstentions {abstentions}"
    else:
        counts = f"pour {TO_COMPLETE}, contre {TO_COMPLETE}, abstentions {TO_COMPLETE}"
    return f"Votes : {counts} ({how})."


def signature_lines(data: dict[str, Any], president: str, president_title: str) -> list[str]:
    """The president's and the secrétaire de séance's signatures (L. 2121-23)."""
    secretary = (data.get("session") or {}).get("secretary") or TO_COMPLETE
    return [f"{president_title},", president, "", "Le secrétaire de séance,", secretary]
