"""The ACTES nomenclature and the rules that give each drafted act its matière for @CTES.

The table in data/actes_nomenclature.json is the national common core of the ACTES nomenclature,
levels 1 (9 matières) and 2 (sous-matières), as the ministère de l'Intérieur distributes it to the
@CTES transmission platforms: the codes and labels printed on the préfecture's accusés de réception
("Matière : 6.1-Police municipale"). It was taken from that file as reproduced by several
independent public @CTES clients (S²LOW/Pastell tooling), which agree on every code and label.
That file is unaccented ASCII: accents, apostrophes and capitals follow French usage here and the
"pourvoirs" typo of matière 6 is corrected; the wording is otherwise the ministry's (6.2 still
says "conseil général"). The finer local levels a préfecture may add are not included.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import TypeGuard

import yaml

from plume.drafting.document import ACT_KINDS, ActeNature

FALLBACK_CODE = "9.1"


@dataclass(frozen=True, slots=True)
class NomenclatureEntry:
    code: str
    label: str

    @property
    def parent(self) -> str | None:
        """The matière of a sous-matière; None for a matière."""
        head, dot, _ = self.code.partition(".")
        return head if dot else None


@cache
def entries() -> tuple[NomenclatureEntry, ...]:
    """Every matière and sous-matière, in the order of the table."""
    resource = files("plume.drafting") / "data" / "actes_nomenclature.json"
    raw: object = json.loads(resource.read_text(encoding="utf-8"))
    if not isinstance(raw, list):
        raise ValueError("actes_nomenclature.json must hold a list")
    table: list[NomenclatureEntry] = []
    for item in raw:
        if not (
            isinstance(item, dict)
            and isinstance(item.get("code"), str)
            and isinstance(item.get("label"), str)
        ):
            raise ValueError(f"actes_nomenclature.json: malformed entry {item!r}")
        table.append(NomenclatureEntry(code=item["code"], label=item["label"]))
    return tuple(table)


@cache
def _labels() -> dict[str, str]:
    return {entry.code: entry.label for entry in entries()}


def label_for(code: str) -> str | None:
    return _labels().get(code.strip())


def is_known(code: str) -> bool:
    return label_for(code) is not None


def _nature(code: str) -> ActeNature:
    return ActeNature(code=code, label=_labels()[code])


# --- Normalisation -------------------------------------------------------------------------------

_LIGATURES = str.maketrans({"œ": "oe", "Œ": "oe", "æ": "ae", "Æ": "ae"})
_TOKEN = re.compile(r"[a-z0-9]+")
# Field-level separator: two spaces, so that a keyword never matches across two fields.
_FIELD_SEPARATOR = "  "


def _singular(token: str) -> str:
    # Dropping a final s/x on both the text and the keywords makes "tarif" match "tarifs" without
    # listing every plural; tokens of four letters or fewer keep theirs so that "plus" never
    # becomes the acronym "plu".
    return token[:-1] if len(token) > 4 and token[-1] in "sx" else token


def normalize(text: str) -> str:
    """Lower case, no accents, no punctuation, plurals folded: the form keywords are matched in."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_LIGATURES).casefold())
    bare = "".join(char for char in decomposed if not unicodedata.combining(char))
    return " ".join(_singular(token) for token in _TOKEN.findall(bare))


def texts_in(value: object) -> Iterator[str]:
    """Every string in a request value, however deeply nested in objects and lists."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from texts_in(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from texts_in(item)


def _searchable(values: Iterable[object]) -> str:
    pieces = (normalize(text) for value in values for text in texts_in(value))
    return f" {_FIELD_SEPARATOR.join(pieces)} "


def _contains(text: str, keyword: str) -> bool:
    return f" {keyword} " in text


# --- Rules ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Rule:
    code: str
    keywords: tuple[str, ...]
    kinds: frozenset[str]
    weights: tuple[int, ...]


def _specificity(keyword: str) -> int:
    # "permis de stationnement" must outweigh the "stationnement" it contains, so a keyword
    # counts once per meaningful word in it (articles and prepositions left out).
    return sum(1 for word in keyword.split() if len(word) > 2) or 1


def _rule(code: str, *keywords: str, kinds: frozenset[str] = ACT_KINDS) -> _Rule:
    normalized = tuple(normalize(keyword) for keyword in keywords)
    return _Rule(code, normalized, kinds, tuple(_specificity(keyword) for keyword in normalized))


_RULE_FIELDS = frozenset({"code", "keywords", "kinds"})


def _load_rules() -> tuple[tuple[_Rule, ...], tuple[_Rule, ...]]:
    """The legal nature rules and the theme rules, in the file's order, which breaks ties."""
    resource = files("plume.drafting") / "data" / "actes_rules.yaml"
    raw: object = yaml.safe_load(resource.read_text(encoding="utf-8"))
    if not (isinstance(raw, dict) and set(raw) == {"legal_nature", "theme"}):
        raise ValueError("actes_rules.yaml must hold the lists legal_nature and theme, only")
    return _rule_table(raw["legal_nature"], "legal_nature"), _rule_table(raw["theme"], "theme")


def _rule_table(raw: object, name: str) -> tuple[_Rule, ...]:
    if not (isinstance(raw, list) and raw):
        raise ValueError(f"actes_rules.yaml: {name} must be a list of rules")
    return tuple(_rule_entry(item, f"{name}[{index}]") for index, item in enumerate(raw))


def _rule_entry(item: object, where: str) -> _Rule:
    if not (isinstance(item, dict) and {"code", "keywords"} <= set(item) <= _RULE_FIELDS):
        raise ValueError(f"actes_rules.yaml: {where} must have a code, keywords and maybe kinds")
    code, keywords, kinds = item["code"], item["keywords"], item.get("kinds")
    # Unquoted, YAML reads 7.10 as the number 7.1: a code must be a string, and a sous-matière.
    if not (isinstance(code, str) and "." in code and is_known(code)):
        raise ValueError(f"actes_rules.yaml: {where}: {code!r} is no sous-matière of the table")
    if not (_is_word_list(keywords) and all(normalize(keyword) for keyword in keywords)):
        raise ValueError(f"actes_rules.yaml: {where}: keywords must be a list of words")
    if kinds is None:
        return _rule(code, *keywords)
    if not (_is_word_list(kinds) and set(kinds) <= ACT_KINDS):
        raise ValueError(f"actes_rules.yaml: {where}: kinds must be among {sorted(ACT_KINDS)}")
    return _rule(code, *keywords, kinds=frozenset(kinds))


def _is_word_list(value: object) -> TypeGuard[list[str]]:
    return isinstance(value, list) and bool(value) and all(isinstance(v, str) for v in value)


# Each rule in data/actes_rules.yaml carries the reason for its words and its place.
_LEGAL_NATURE_RULES, _THEME_RULES = _load_rules()
_CONTRACT_MARKERS = next(rule.keywords for rule in _LEGAL_NATURE_RULES if rule.code == "4.2")

_SUBJECT_WEIGHT = 3
_BODY_WEIGHT = 1

# Fields that say nothing about what the act decides: who signs, when, how the vote went, and
# the request's own options.
_NON_CONTENT_FIELDS = frozenset(
    {
        "kind",
        "subject",
        "signatory",
        "vote",
        "session_date",
        "session",
        "number",
        "start_date",
        "end_date",
        "model_group",
        "stream",
        "max_output_tokens",
    }
)


def _score(rule: _Rule, subject: str, body: str) -> int:
    return sum(
        weight
        * (_SUBJECT_WEIGHT * _contains(subject, keyword) + _BODY_WEIGHT * _contains(body, keyword))
        for keyword, weight in zip(rule.keywords, rule.weights, strict=True)
    )


def _best(rules: Iterable[_Rule], kind: str, subject: str, body: str) -> str | None:
    best_code: str | None = None
    best_score = 0
    for rule in rules:
        if kind not in rule.kinds:
            continue
        score = _score(rule, subject, body)
        if score > best_score:
            best_code, best_score = rule.code, score
    return best_code


def classify(kind: str, fields: Mapping[str, object]) -> ActeNature:
    """The most plausible sous-matière for an act, from the request's own words."""
    if kind not in ACT_KINDS:
        raise ValueError(f"only acts have an ACTES matière, not {kind!r}")
    subject = _searchable([fields.get("subject")])
    body = _searchable(value for key, value in fields.items() if key not in _NON_CONTENT_FIELDS)
    code = (
        _best(_LEGAL_NATURE_RULES, kind, subject, body)
        or _best(_THEME_RULES, kind, subject, body)
        or FALLBACK_CODE
    )
    # Posts are words shared by both statuses; one mention of a contract anywhere decides it.
    if code == "4.1" and any(
        _contains(subject, marker) or _contains(body, marker) for marker in _CONTRACT_MARKERS
    ):
        code = "4.2"
    return _nature(code)


_SUGGESTED_CODE = re.compile(r"\s*(\d{1,2})\.(\d{1,2})(?!\d)")


def merge_suggestion(rule_based: ActeNature, suggested_code: str | None) -> ActeNature:
    """The model's sous-matière when the table knows it, else the rule-based one."""
    if suggested_code is None:
        return rule_based
    # Models write "6.1", "6.1 Police municipale" or a préfecture's local "6.1.2"; the national
    # table stops at level 2, and a matière alone is too coarse to transmit, so keep level 2 only.
    match = _SUGGESTED_CODE.match(suggested_code)
    if match is None:
        return rule_based
    code = f"{int(match[1])}.{int(match[2])}"
    label = label_for(code)
    return rule_based if label is None else ActeNature(code=code, label=label)
