"""The legal test set in the fast lane: each case raises what it must and nothing it must not."""

from __future__ import annotations

import pytest

from plume.drafting.checker import LEGAL_CODES
from tests.drafting.legal_set import LegalCase, cases, raised


def test_the_set_is_large_and_covers_every_kind_and_code() -> None:
    assert len(cases()) >= 30
    assert len({case.name for case in cases()}) == len(cases())
    kinds = {case.kind for case in cases()}
    assert kinds >= {"arrete", "deliberation", "courrier", "bulletin_article"}
    named = set().union(*(case.must | case.must_not for case in cases()))
    assert named <= set(LEGAL_CODES), named - set(LEGAL_CODES)
    # Every code is expected somewhere, so that the bench measures its recall.
    raised_somewhere = set().union(*(case.must | case.known_miss for case in cases()))
    assert raised_somewhere == set(LEGAL_CODES), set(LEGAL_CODES) - raised_somewhere


@pytest.mark.parametrize("case", cases(), ids=[case.name for case in cases()])
def test_each_case_raises_what_it_must_and_nothing_it_must_not(case: LegalCase) -> None:
    found = set(raised(case))
    assert not case.must & case.must_not, case.name
    assert case.must - case.known_miss <= found, (case.must - found, sorted(found))
    assert not (case.must_not - case.known_false) & found, sorted(found)
