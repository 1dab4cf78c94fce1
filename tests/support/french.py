"""Is a message written in French? Plume's messages to people are."""

from __future__ import annotations

import re

_FRENCH_WORDS = {
    *("de", "la", "le", "les", "du", "des", "un", "une", "ce", "cet", "cette", "à"),
    *("est", "ne", "pas", "aucun", "aucune", "votre", "vous", "clé", "doit", "être"),
    *("et", "ou", "en", "au", "aux", "par", "pour", "sur", "dans", "non", "valeur", "champ"),
    *("champs", "sont", "plusieurs"),
}


def looks_french(text: str) -> bool:
    """A common French word, or a French accented letter."""
    words = set(re.findall(r"[a-zà-ÿ]+", text.lower()))
    return bool(words & _FRENCH_WORDS) or any(char in text for char in "éèêàçù")
