"""What the legal checks read: the draft, its parsed sections, the request and the tenant."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from plume.drafting.document import Sections

PLACEHOLDER = re.compile(r"\[\s*[ÀA]\s+COMPL[ÉE]TER\s*\]|_{3,}|…|\.{3}", re.IGNORECASE)
_MONTHS = {
    "janvier": 1,
    "fevrier": 2,
    "mars": 3,
    "avril": 4,
    "mai": 5,
    "juin": 6,
    "juillet": 7,
    "aout": 8,
    "septembre": 9,
    "octobre": 10,
    "novembre": 11,
    "decembre": 12,
}
FRENCH_DATE = re.compile(
    r"\b(?P<day>[0-3]?\d)(?:er)?\s+(?P<month>janvier|f[ée]vrier|mars|avril|mai|juin|juillet"
    r"|ao[ûu]t|septembre|octobre|novembre|d[ée]cembre)\s+(?P<year>\d{4})\b",
    re.IGNORECASE,
)
_MARKUP = re.compile(r"[*_#>`]")
_COMBINING = re.compile(r"[\u0300-\u036f]+")


def fold(text: str) -> str:
    """Lower case, no accents, no Markdown emphasis, single spaces: what patterns compare."""
    decomposed = unicodedata.normalize("NFKD", _MARKUP.sub("", text))
    bare = _COMBINING.sub("", decomposed).casefold()
    return " ".join(bare.replace("’", "'").split())


def parse_french_date(text: str) -> date | None:
    found = FRENCH_DATE.search(text)
    if found is None:
        return None
    month = _MONTHS[fold(found.group("month"))]
    try:
        return date(int(found.group("year")), month, int(found.group("day")))
    except ValueError:
        return None


def iso_date(value: object) -> date | None:
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            return None
    return None


def given(value: object) -> bool:
    """A request value that says something (not None, not blank, not a placeholder)."""
    if value is None:
        return False
    if isinstance(value, str):
        return bool(value.strip()) and not PLACEHOLDER.search(value)
    return True


@dataclass(slots=True)
class CheckContext:
    """One draft as the checks see it; every request field is read defensively (a stored
    draft or an older client may lack it)."""

    kind: str
    text: str
    sections: Sections = field(default_factory=Sections)
    fields: Mapping[str, Any] = field(default_factory=dict)
    population: int | None = None
    publication_mode: str | None = None
    acte_code: str | None = None
    acte_label: str | None = None
    folded: str = ""
    _folded_lines: str | None = None

    def __post_init__(self) -> None:
        self.folded = fold(self.text)

    @property
    def is_act(self) -> bool:
        return self.kind in ("arrete", "deliberation")

    @property
    def arrete(self) -> bool:
        return self.kind == "arrete"

    @property
    def deliberation(self) -> bool:
        return self.kind == "deliberation"

    def value(self, *path: str) -> Any:
        current: Any = self.fields
        for key in path:
            if not isinstance(current, Mapping):
                return None
            current = current.get(key)
        return current

    def number(self, *path: str) -> int | None:
        found = self.value(*path)
        return found if isinstance(found, int) and not isinstance(found, bool) else None

    def request_text(self) -> str:
        """The request's own words, folded: what the matter is about."""
        parts: list[str] = []
        for key in ("subject", "context"):
            value = self.fields.get(key)
            if isinstance(value, str):
                parts.append(value)
        for key in ("provisions", "decisions", "points", "key_points", "legal_bases"):
            items = self.fields.get(key)
            if isinstance(items, list):
                parts += [item for item in items if isinstance(item, str)]
        return fold(" ".join(parts))

    def folded_lines(self) -> str:
        """The folded text with its line breaks kept (fold joins lines)."""
        if self._folded_lines is None:
            self._folded_lines = "\n".join(fold(line) for line in self.text.splitlines())
        return self._folded_lines

    def articles_text(self) -> list[str]:
        return [article.text for article in self.sections.articles]
