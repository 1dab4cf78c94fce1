"""The séance of a délibération: counts and quorum, convocation, secrétaire, mode of vote."""

from __future__ import annotations

import re
from datetime import date

from plume.drafting.checker.codes import (
    CONVOCATION_TOO_LATE,
    MISSING_SESSION_COUNTS,
    MISSING_SESSION_SECRETARY,
    MISSING_VOTE_MODE,
    warning,
)
from plume.drafting.checker.context import (
    FRENCH_DATE,
    PLACEHOLDER,
    CheckContext,
    fold,
    given,
    iso_date,
    parse_french_date,
)
from plume.drafting.document import DraftWarning

# Patterns run on folded text (no accents, lower case); every gap is bounded.
_COUNTS = {
    "in_office": re.compile(
        r"(?:membres|conseillers)(?: municipaux)? en exercice ?:? ?(\d{1,4})\b"
        r"|\b(\d{1,4}) (?:membres|conseillers)(?: municipaux)? en exercice"
    ),
    "present": re.compile(r"\bpresents? ?: ?(\d{1,4})\b|\b(\d{1,4}) (?:membres )?presents\b"),
    "represented": re.compile(
        r"\b(?:representes?|pouvoirs?|procurations?) ?: ?(\d{1,4})\b"
        r"|\b(\d{1,4}) (?:representes|pouvoirs|procurations)\b"
    ),
    "voting": re.compile(r"\bvotants? ?: ?(\d{1,4})\b|\b(\d{1,4}) votants\b"),
}
_COUNT_NAMES = {
    "in_office": "conseillers en exercice",
    "present": "présents",
    "represented": "représentés (pouvoirs)",
    "voting": "votants",
}
_FOR = re.compile(r"\bpour ?:? ?(\d{1,4})\b")
_AGAINST = re.compile(r"\bcontre ?:? ?(\d{1,4})\b")
_ABSTENTIONS = re.compile(r"\babstentions? ?:? ?(\d{1,4})\b")
_CONVOCATION = re.compile(
    r"convoque(?:e|s|es)?(?: par le maire)? le |date de (?:la )?convocation ?:? ?(?:le )?"
    r"|convocation (?:du|en date du|adressee le|envoyee le) ",
)
_SESSION_DATE = re.compile(r"seance (?:publique )?du |s'est reuni(?:e)? le ")
_SECRETARY = re.compile(r"secr[ée]taire\s+de\s+s[ée]ance", re.IGNORECASE)
_NAME = re.compile(r"(?:M\.|Mme|Monsieur|Madame)?\s{0,3}[A-ZÀ-Ý][\w'’-]{1,40}")
_APPOINTED = re.compile(r"design[ée]e?s?\s+(?:comme\s+|en\s+qualit[ée]\s+de\s+)?$", re.I)
_VOTE_MODE = re.compile(
    r"main levee|scrutin (?:public|secret)|bulletin secret|vote electronique|par assis et leve"
)
_VOTE_MODES = ("main_levee", "scrutin_public", "scrutin_secret")


def check_seance(ctx: CheckContext) -> list[DraftWarning]:
    if not ctx.deliberation:
        return []
    return [*_counts(ctx), *_convocation(ctx), *_secretary(ctx), *_vote_mode(ctx)]


def _text_count(ctx: CheckContext, name: str) -> int | None:
    # Line by line: « 2027 » ending one line is no count of the next.
    found = _COUNTS[name].search(ctx.folded_lines())
    if found is None:
        return None
    return int(found.group(1) or found.group(2))


def _counts(ctx: CheckContext) -> list[DraftWarning]:
    counts: dict[str, int | None] = {
        name: _text_count(ctx, name) for name in ("in_office", "present", "represented", "voting")
    }
    fields = {"in_office": "members_in_office", "present": "present", "represented": "represented"}
    for name, key in fields.items():
        if counts[name] is None:
            counts[name] = ctx.number("session", key)
    present, represented = counts["present"], counts["represented"]
    if counts["voting"] is None and ctx.value("session") and present is not None:
        # A template that knows present and represented writes the votants from them.
        counts["voting"] = present + (represented or 0)
    missing = [_COUNT_NAMES[name] for name, value in counts.items() if value is None]
    warnings = []
    if missing:
        warnings.append(
            warning(
                MISSING_SESSION_COUNTS,
                f"Les effectifs de la séance manquent ({', '.join(missing)}) : indiquez le "
                "nombre de conseillers en exercice, de présents, de représentés (avec le nom "
                "de chaque mandant et de son mandataire) et de votants, pour que le quorum et "
                "le vote puissent être vérifiés.",
            )
        )
    in_office, voting = counts["in_office"], counts["voting"]
    if in_office is not None and present is not None and present * 2 <= in_office:
        warnings.append(
            warning(
                MISSING_SESSION_COUNTS,
                f"Le quorum n'est pas atteint : {present} présents pour {in_office} conseillers "
                "en exercice, il faut plus de la moitié des membres en exercice présents. "
                "Vérifiez les effectifs ; sinon, le conseil doit être convoqué à nouveau "
                "(à trois jours au moins d'intervalle, il délibère alors sans condition de "
                "quorum).",
                "CGCT, art. L. 2121-17",
            )
        )
    cast = _cast_votes(ctx)
    if cast is not None and voting is not None and cast != voting:
        warnings.append(
            warning(
                MISSING_SESSION_COUNTS,
                f"Les voix ne correspondent pas aux votants : pour + contre + abstentions = "
                f"{cast}, pour {voting} votants. Corrigez le décompte du vote ou des votants.",
                "CGCT, art. L. 2121-20",
            )
        )
    return warnings


def _cast_votes(ctx: CheckContext) -> int | None:
    vote = ctx.value("vote")
    if isinstance(vote, dict):
        numbers = [vote.get("for"), vote.get("against"), vote.get("abstentions", 0)]
        if all(isinstance(n, int) for n in numbers):
            return sum(n for n in numbers if isinstance(n, int))
    for line in map(fold, ctx.text.splitlines()):
        found = [p.search(line) for p in (_FOR, _AGAINST)]
        if all(found):
            abstentions = _ABSTENTIONS.search(line)
            return sum(int(m.group(1)) for m in (*found, abstentions) if m is not None)
    return None


def _date_after(ctx: CheckContext, pattern: re.Pattern[str]) -> date | None:
    for found in pattern.finditer(ctx.folded):
        window = ctx.folded[found.end() : found.end() + 40]
        if FRENCH_DATE.match(window):
            return parse_french_date(window)
    return None


def _convocation(ctx: CheckContext) -> list[DraftWarning]:
    convocation = iso_date(ctx.value("session", "convocation_date")) or _date_after(
        ctx, _CONVOCATION
    )
    held = iso_date(ctx.value("session_date")) or _date_after(ctx, _SESSION_DATE)
    large = ctx.population is not None and ctx.population >= 3500
    days = 5 if large else 3
    if convocation is None:
        return [
            warning(
                CONVOCATION_TOO_LATE,
                "La date de convocation du conseil n'est pas indiquée : précisez-la "
                f"(« convoqué le … »), au moins {days} jours francs avant la séance.",
            )
        ]
    if held is None:
        return []
    # Jours francs: neither the day the convocation was sent nor the day of the séance count.
    clear_days = (held - convocation).days - 1
    if clear_days >= days:
        return []
    threshold = "de 3 500 habitants et plus" if large else "de moins de 3 500 habitants"
    return [
        warning(
            CONVOCATION_TOO_LATE,
            f"La convocation ne laisse que {max(clear_days, 0)} jour(s) franc(s) avant la "
            f"séance : dans une commune {threshold}, il en faut {days}. Vérifiez les dates ; "
            "en cas d'urgence, le délai peut être abrégé à un jour franc, le maire en rend "
            "compte dès l'ouverture de la séance et la délibération le mentionne.",
            "CGCT, art. L. 2121-12" if large else "CGCT, art. L. 2121-11",
        )
    ]


def _secretary(ctx: CheckContext) -> list[DraftWarning]:
    named = given(ctx.value("session", "secretary")) or _secretary_named(ctx.text)
    if not named:
        return [
            warning(
                MISSING_SESSION_SECRETARY,
                "Le secrétaire de séance n'est pas désigné : indiquez le conseiller nommé en "
                "début de séance (« M. … a été désigné secrétaire de séance ») et ajoutez sa "
                "signature à côté de celle du maire.",
            )
        ]
    signing = ctx.folded.rfind("fait a ")
    if signing >= 0 and "secretaire de seance" not in ctx.folded[signing:]:
        return [
            warning(
                MISSING_SESSION_SECRETARY,
                "Le secrétaire de séance ne signe pas la délibération : ajoutez son bloc de "
                "signature (« Le secrétaire de séance, » puis son nom) à côté de celui du maire.",
                "CGCT, art. L. 2121-23",
            )
        ]
    return []


def _secretary_named(text: str) -> bool:
    for found in _SECRETARY.finditer(text):
        after = text[found.end() : found.end() + 60].lstrip(" :,–-*\n")
        before = text[max(0, found.start() - 80) : found.start()]
        if PLACEHOLDER.match(after.strip()):
            continue
        if _NAME.match(after) or _APPOINTED.search(before):
            return True
    return False


def _vote_mode(ctx: CheckContext) -> list[DraftWarning]:
    if ctx.value("session", "vote_mode") in _VOTE_MODES or _VOTE_MODE.search(ctx.folded):
        return []
    return [
        warning(
            MISSING_VOTE_MODE,
            "Le mode de scrutin n'est pas indiqué : précisez si le conseil a voté à main levée, "
            "au scrutin public ou au scrutin secret.",
        )
    ]
