"""Benchmark: the checker's precision and recall per code over the legal test set.

For each case and code, the case says the code must be raised (`must`, or `known_miss` when
the checker is known to miss it) or must not (`must_not`, or `known_false` when it is known
to raise it wrongly); codes a case names in neither list are not counted. Prints the table
(nothing is asserted beyond the fast lane's test); `make bench` runs it.
"""

from __future__ import annotations

from collections import Counter

import pytest

from plume.drafting.checker import LEGAL_CODES
from tests.drafting.legal_set import cases, raised

pytestmark = pytest.mark.bench


def _ratio(hits: int, total: int) -> str:
    return f"{hits / total:6.2f}" if total else "     -"


def _row(label: str, tp: int, fp: int, fn: int) -> str:
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    return f"  {label:28} {tp:3d} {fp:3d} {fn:3d} {precision:>10} {recall:>7}"


def test_precision_and_recall_per_code() -> None:
    true_pos: Counter[str] = Counter()
    false_pos: Counter[str] = Counter()
    false_neg: Counter[str] = Counter()
    for case in cases():
        found = set(raised(case))
        expected = case.must | case.known_miss
        for code in expected:
            (true_pos if code in found else false_neg)[code] += 1
        for code in (case.must_not | case.known_false) & found:
            false_pos[code] += 1
    print(f"\n== Legal checker over {len(cases())} cases ==")
    print(f"  {'code':28} {'TP':>3} {'FP':>3} {'FN':>3} {'precision':>10} {'recall':>7}")
    for code in LEGAL_CODES:
        print(_row(code, true_pos[code], false_pos[code], false_neg[code]))
    totals = (sum(c.values()) for c in (true_pos, false_pos, false_neg))
    print(_row("all codes", *totals))
