"""French public identifiers: INSEE commune codes, SIREN and SIRET numbers."""

from __future__ import annotations

import re

_INSEE = re.compile(r"^(?:\d{5}|2[AB]\d{3})$")
_SIREN = re.compile(r"^\d{9}$")
_SIRET = re.compile(r"^\d{14}$")


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


def normalize_siret(value: str) -> str:
    """An establishment's SIRET: its SIREN and a 5-digit establishment number (14 digits).
    The Luhn key is not checked: La Poste's establishments are numbered otherwise."""
    siret = value.replace(" ", "").strip()
    if not _SIRET.match(siret):
        raise ValueError("Un SIRET compte 14 chiffres (ex. 21760349400019).")
    return siret
