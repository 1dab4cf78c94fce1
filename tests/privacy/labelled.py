"""The privacy labelled set (tests/privacy/labelled_set.yaml) and how the detector is scored
on it: per entity type, a replacement is right when its type and exact string are expected;
an expected string not replaced is a miss; a `keep` string that did not survive counts as a
wrong replacement too."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from plume.privacy.detection import ENTITY_TYPES, detect
from plume.privacy.pseudonyms import Pseudonyms

LABELLED = Path(__file__).with_name("labelled_set.yaml")


def load() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(LABELLED.read_text(encoding="utf-8"))
    return data


def protected(identity: dict[str, str]) -> list[str]:
    return [
        identity[k] for k in ("commune", "epci", "mayor", "mayor_title", "secretary", "tribunal")
    ]


@dataclass
class Score:
    right: Counter[str] = field(default_factory=Counter)
    wrong: Counter[str] = field(default_factory=Counter)
    missed: Counter[str] = field(default_factory=Counter)
    misses: list[str] = field(default_factory=list)
    false: list[str] = field(default_factory=list)
    known: set[str] = field(default_factory=set)

    def precision(self, kind: str | None = None) -> float:
        right = sum(self.right.values()) if kind is None else self.right[kind]
        wrong = sum(self.wrong.values()) if kind is None else self.wrong[kind]
        return right / (right + wrong) if right + wrong else 1.0

    def recall(self, kind: str | None = None) -> float:
        right = sum(self.right.values()) if kind is None else self.right[kind]
        missed = sum(self.missed.values()) if kind is None else self.missed[kind]
        return right / (right + missed) if right + missed else 1.0

    def table(self) -> str:
        lines = [f"{'type':<16}{'precision':>10}{'recall':>8}{'found':>7}{'missed':>8}{'wrong':>7}"]
        for kind in (*ENTITY_TYPES, "KEEP", None):
            name = kind or "all"
            right = sum(self.right.values()) if kind is None else self.right[kind]
            missed = sum(self.missed.values()) if kind is None else self.missed[kind]
            wrong = sum(self.wrong.values()) if kind is None else self.wrong[kind]
            lines.append(
                f"{name:<16}{self.precision(kind):>10.3f}{self.recall(kind):>8.3f}"
                f"{right:>7}{missed:>8}{wrong:>7}"
            )
        return "\n".join(lines)


def score(data: dict[str, Any] | None = None, *, held_out: bool | None = None) -> Score:
    """The detector's score on the set, or on its held-out requests (True) or the others."""
    data = data or load()
    names = protected(data["identity"])
    result = Score()
    for request in data["requests"]:
        if held_out is not None and bool(request.get("held_out")) != held_out:
            continue
        text = " ".join(request["text"].split())
        found = {(e.type, e.text) for e in detect(text, protected=names)}
        expected = {
            (kind, " ".join(str(s).split()))
            for kind, strings in (request.get("entities") or {}).items()
            for s in strings
        }
        for kind, string in expected:
            if (kind, string) in found:
                result.right[kind] += 1
            else:
                result.missed[kind] += 1
                result.misses.append(f"{request['id']}: {kind} {string}")
        for kind, string in found - expected:
            result.wrong[kind] += 1
            result.false.append(f"{request['id']}: {kind} {string!r}")
        pseudonymised = Pseudonyms(names).protect(text)
        for kept in request.get("keep") or []:
            if str(kept) not in pseudonymised:
                result.wrong["KEEP"] += 1
                result.false.append(f"{request['id']}: KEEP {kept!r}")
        listed = [*(request.get("known_misses") or []), *(request.get("known_wrong") or [])]
        result.known.update(f"{request['id']}: {m}" for m in listed)
    return result
