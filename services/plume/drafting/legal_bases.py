"""The legal bases an act needs by matter, read from data/legal_bases.yaml.

The offline drafter writes the visas of the matters it finds in a request; the checker asks
which of them a drafted act leaves out (`legal_basis_suspect`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib.resources import files

import yaml

from plume.drafting.actes import normalize, texts_in
from plume.drafting.document import ACT_KINDS

_SUBJECT_WEIGHT = 3
_MATTER_FIELDS = frozenset(
    {
        "matter",
        "label",
        "kinds",
        "supersedes",
        "keywords",
        "visas",
        "mentions",
        "individual",
        "transmission",
    }
)
_VISA_FIELDS = frozenset({"text", "cited", "source"})
# Fields of a request that say nothing about its matter.
_NON_CONTENT = frozenset(
    {
        "kind",
        "subject",
        "signatory",
        "vote",
        "session",
        "session_date",
        "number",
        "start_date",
        "end_date",
        "rapporteur",
        "model_group",
        "stream",
        "max_output_tokens",
    }
)


@dataclass(frozen=True, slots=True)
class ExpectedVisa:
    """A visa a matter needs: its wording, how to recognise it, and the rule behind it."""

    text: str
    codes: tuple[str, ...]
    article: str | None
    source: str

    def cited_in(self, visa: str) -> bool:
        """Whether one visa (a line of text) cites this basis: its code, and its article."""
        folded = f" {normalize(visa)} "
        if not any(f" {code} " in folded for code in self.codes):
            return False
        return self.article is None or f" {self.article} " in folded

    def cited_among(self, visas: Iterable[str]) -> bool:
        return any(self.cited_in(visa) for visa in visas)


@dataclass(frozen=True, slots=True)
class Matter:
    key: str
    label: str
    kinds: frozenset[str]
    supersedes: tuple[str, ...]
    keywords: tuple[str, ...]
    visas: tuple[ExpectedVisa, ...]
    mentions: tuple[str, ...]
    individual: bool = False
    transmission: bool | None = None

    def missing_from(self, visas: Iterable[str]) -> list[ExpectedVisa]:
        """The bases of this matter that none of `visas` cites."""
        given = list(visas)
        return [visa for visa in self.visas if not visa.cited_among(given)]


def _searchable(texts: Iterable[str]) -> str:
    # Two spaces between texts, so that a keyword never spans two of them.
    return " " + "  ".join(normalize(text) for text in texts) + " "


def matters_for(kind: str, subject: str, text: str) -> list[Matter]:
    """The matters an act is about, the most evident first; superseded ones left out."""
    if kind not in ACT_KINDS:
        return []
    folded_subject, folded_body = _searchable([subject]), _searchable([text])
    scored: list[tuple[int, int, Matter]] = []
    for index, matter in enumerate(table()):
        if kind not in matter.kinds:
            continue
        score = sum(
            _SUBJECT_WEIGHT * (f" {keyword} " in folded_subject) + (f" {keyword} " in folded_body)
            for keyword in matter.keywords
        )
        if score:
            scored.append((-score, index, matter))
    found = [matter for _, _, matter in sorted(scored, key=lambda item: item[:2])]
    dropped = {key for matter in found for key in matter.supersedes}
    return [matter for matter in found if matter.key not in dropped]


def matter_for(kind: str, subject: str, text: str) -> Matter | None:
    """The matter an act is chiefly about, if the table knows it."""
    found = matters_for(kind, subject, text)
    return found[0] if found else None


def matters_for_request(kind: str, fields: Mapping[str, object]) -> list[Matter]:
    """The matters of a drafting request, from its subject and its content fields."""
    body = " ".join(
        text for key, value in fields.items() if key not in _NON_CONTENT for text in texts_in(value)
    )
    return matters_for(kind, str(fields.get("subject") or ""), body)


def expected_visas(matters: Iterable[Matter]) -> list[ExpectedVisa]:
    """The visas of several matters, each once, in the table's order of matters."""
    seen: set[str] = set()
    visas: list[ExpectedVisa] = []
    for matter in matters:
        for visa in matter.visas:
            if visa.text not in seen:
                seen.add(visa.text)
                visas.append(visa)
    return visas


def is_individual(matters: Iterable[Matter]) -> bool:
    """Whether the act decides for a named person (notified, CGCT L. 2131-1 II)."""
    return any(matter.individual for matter in matters)


def transmission_due(kind: str, matters: Iterable[Matter]) -> bool | None:
    """Whether the act goes to the préfecture (CGCT L. 2131-2); None when the table cannot say."""
    if kind == "deliberation":
        return True
    said = [matter.transmission for matter in matters if matter.transmission is not None]
    if any(said):
        return True
    return False if said else None


# --- Loading -------------------------------------------------------------------------------------


@cache
def table() -> tuple[Matter, ...]:
    """Every matter of data/legal_bases.yaml, in the file's order."""
    resource = files("plume.drafting") / "data" / "legal_bases.yaml"
    raw: object = yaml.safe_load(resource.read_text(encoding="utf-8"))
    if not (isinstance(raw, dict) and isinstance(raw.get("matters"), list) and raw["matters"]):
        raise ValueError("legal_bases.yaml must hold a list of matters")
    matters = tuple(_matter(item, index) for index, item in enumerate(raw["matters"]))
    keys = [matter.key for matter in matters]
    if len(set(keys)) != len(keys):
        raise ValueError("legal_bases.yaml: a matter is listed twice")
    unknown = {key for matter in matters for key in matter.supersedes} - set(keys)
    if unknown:
        raise ValueError(f"legal_bases.yaml: supersedes unknown matters {sorted(unknown)}")
    return matters


def _words(value: object, where: str) -> tuple[str, ...]:
    if not (isinstance(value, list) and all(isinstance(v, str) and v.strip() for v in value)):
        raise ValueError(f"legal_bases.yaml: {where} must be a list of words")
    return tuple(value)


def _matter(item: object, index: int) -> Matter:
    where = f"matters[{index}]"
    if not (
        isinstance(item, dict) and {"matter", "label", "kinds", "keywords", "visas"} <= set(item)
    ):
        raise ValueError(f"legal_bases.yaml: {where} needs matter, label, kinds, keywords, visas")
    if set(item) - _MATTER_FIELDS:
        raise ValueError(
            f"legal_bases.yaml: {where} has unknown fields {set(item) - _MATTER_FIELDS}"
        )
    kinds = frozenset(_words(item["kinds"], f"{where}.kinds"))
    if not kinds <= ACT_KINDS:
        raise ValueError(f"legal_bases.yaml: {where}.kinds must be among {sorted(ACT_KINDS)}")
    visas = item["visas"]
    if not (isinstance(visas, list) and visas):
        raise ValueError(f"legal_bases.yaml: {where}.visas must be a list")
    return Matter(
        key=str(item["matter"]),
        label=str(item["label"]),
        kinds=kinds,
        supersedes=_words(item.get("supersedes", []), f"{where}.supersedes"),
        keywords=tuple(normalize(k) for k in _words(item["keywords"], f"{where}.keywords")),
        visas=tuple(_visa(visa, f"{where}.visas[{n}]") for n, visa in enumerate(visas)),
        mentions=_words(item.get("mentions", []), f"{where}.mentions"),
        individual=bool(_flag(item.get("individual"), f"{where}.individual")),
        transmission=_flag(item.get("transmission"), f"{where}.transmission"),
    )


def _flag(value: object, where: str) -> bool | None:
    if value is not None and not isinstance(value, bool):
        raise ValueError(f"legal_bases.yaml: {where} must be true or false")
    return value


def _visa(item: object, where: str) -> ExpectedVisa:
    if not (isinstance(item, dict) and set(item) == _VISA_FIELDS):
        raise ValueError(f"legal_bases.yaml: {where} needs text, cited and source, only")
    cited = item["cited"]
    if not (isinstance(cited, dict) and "codes" in cited and set(cited) <= {"codes", "article"}):
        raise ValueError(f"legal_bases.yaml: {where}.cited needs codes and maybe an article")
    article = cited.get("article")
    if article is not None and not isinstance(article, str):
        raise ValueError(f"legal_bases.yaml: {where}.cited.article must be text")
    if not (isinstance(item["text"], str) and isinstance(item["source"], str)):
        raise ValueError(f"legal_bases.yaml: {where}: text and source must be text")
    return ExpectedVisa(
        text=item["text"].strip(),
        codes=tuple(normalize(code) for code in _words(cited["codes"], f"{where}.cited.codes")),
        article=normalize(article) if article else None,
        source=item["source"].strip(),
    )
