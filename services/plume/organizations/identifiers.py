"""French public identifiers: INSEE commune codes and SIREN numbers."""

from __future__ import annotations

import re

_INSEE = re.compile(r"^(?:\d{5}|2[AB]\d{3})$")
_SIREN = re.compile(r"^\d{9}$")


def luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def normalize_insee(value: str) -> str:
    code = value.strip().upper()
    if not _INSEE.match(code):
        raise ValueError(
            "Un code INSEE de commune compte 5 caractères : 5 chiffres, ou 2A/2B suivis "
            "de 3 chiffres pour la Corse (ex. 76349)."
        )
    return code


def normalize_siren(value: str) -> str:
    siren = value.replace(" ", "").strip()
    if not _SIREN.match(siren):
        raise ValueError("Un SIREN compte 9 chiffres (ex. 200069524).")
    if not luhn_valid(siren):
        raise ValueError("Ce SIREN n'est pas valide (clé de contrôle de Luhn incorrecte).")
    return siren
