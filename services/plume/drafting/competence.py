"""Questions of competence (data/competence.yaml): whether the commune is the authority for
what an act or a letter decides, which only the agent can answer (a road's status, the size
of a kennel). Read once; the checker asks each question whose trigger the request holds."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib.resources import files

import yaml

from plume.drafting.actes import normalize, texts_in
from plume.drafting.legal_bases import matters_for_request, table

KINDS = frozenset(["arrete", "deliberation", "courrier", "bulletin_article", "synthese"])
_FIELDS = frozenset(["name", "kinds", "matters", "keywords", "settled_by", "question", "source"])


@dataclass(frozen=True, slots=True)
class Question:
    name: str
    kinds: frozenset[str]
    matters: frozenset[str]
    keywords: tuple[str, ...]
    settled_by: tuple[str, ...]
    question: str
    source: str

    def raised_by(self, kind: str, fields: Mapping[str, object]) -> bool:
        if kind not in self.kinds:
            return False
        if self.matters and any(m.key in self.matters for m in matters_for_request(kind, fields)):
            return True
        words = f" {normalize(' '.join(texts_in(dict(fields))))} "
        return any(f" {keyword} " in words for keyword in self.keywords)

    def settled_in(self, text: str) -> bool:
        folded = f" {normalize(text)} "
        return any(f" {words} " in folded for words in self.settled_by)


def questions_for(kind: str, fields: Mapping[str, object], text: str) -> list[Question]:
    """The questions a draft leaves open: raised by its request, not settled by its text."""
    return [q for q in questions() if q.raised_by(kind, fields) and not q.settled_in(text)]


@cache
def questions() -> tuple[Question, ...]:
    resource = files("plume.drafting") / "data" / "competence.yaml"
    raw: object = yaml.safe_load(resource.read_text(encoding="utf-8"))
    if not (isinstance(raw, dict) and isinstance(raw.get("questions"), list)):
        raise ValueError("competence.yaml must hold a list of questions")
    known = {matter.key for matter in table()}
    return tuple(_question(item, index, known) for index, item in enumerate(raw["questions"]))


def _words(item: dict[str, object], key: str, where: str) -> tuple[str, ...]:
    value = item.get(key, [])
    if not (isinstance(value, list) and all(isinstance(v, str) and v.strip() for v in value)):
        raise ValueError(f"competence.yaml: {where}.{key} must be a list of words")
    return tuple(value)


def _question(item: object, index: int, known: set[str]) -> Question:
    where = f"questions[{index}]"
    if not (isinstance(item, dict) and {"name", "kinds", "question", "source"} <= set(item)):
        raise ValueError(f"competence.yaml: {where} needs name, kinds, question and source")
    if set(item) - _FIELDS:
        raise ValueError(f"competence.yaml: {where} has unknown fields {set(item) - _FIELDS}")
    kinds = frozenset(_words(item, "kinds", where))
    matters = frozenset(_words(item, "matters", where))
    keywords = tuple(normalize(k) for k in _words(item, "keywords", where))
    if not kinds <= KINDS or matters - known or not (matters or keywords):
        raise ValueError(f"competence.yaml: {where}: unknown kinds or matters, or no trigger")
    return Question(
        name=str(item["name"]),
        kinds=kinds,
        matters=matters,
        keywords=keywords,
        settled_by=tuple(normalize(s) for s in _words(item, "settled_by", where)),
        question=" ".join(str(item["question"]).split()),
        source=str(item["source"]).strip(),
    )
