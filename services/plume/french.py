"""French wording shared across domains: dates, numbers and the names of document kinds."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

_MONTHS = (
    "janvier",
    "février",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
)

# A kind as a noun inside a sentence (« La rédaction de documents de type « arrêté »… »).
KIND_NOUNS: dict[str, str] = {
    "arrete": "arrêté",
    "deliberation": "délibération",
    "courrier": "courrier",
    "bulletin_article": "article de bulletin",
    "synthese": "synthèse",
}

# A kind as the heading of a document (exports).
KIND_TITLES: dict[str, str] = {
    "arrete": "Arrêté",
    "deliberation": "Délibération",
    "courrier": "Courrier",
    "bulletin_article": "Article de bulletin municipal",
    "synthese": "Synthèse",
}


def french_day(day: date) -> str:
    """'27 novembre 2026', '1er mars 2027'."""
    ordinal = "1er" if day.day == 1 else str(day.day)
    return f"{ordinal} {_MONTHS[day.month - 1]} {day.year}"


def plain_number(value: Decimal) -> str:
    """12, 0.5: a count or an amount as a person (and a header) writes it."""
    return str(int(value)) if value == value.to_integral_value() else f"{value.normalize():f}"
