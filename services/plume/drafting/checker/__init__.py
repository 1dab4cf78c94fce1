"""Check a draft before a person signs it: the form of an act (form), its séance (seance), its
life after signature (life), its visas (visas), its wording (wording), the questions only
the agent can answer (questions), matters where money or competence is at stake (matters), and
letters (letters). Each warning has a stable code, a French message saying what
to do and, where it has one, its legal source."""

from __future__ import annotations

from plume.drafting.checker.codes import FORM_CODES, LEGAL_CODES, SOURCES
from plume.drafting.checker.context import CheckContext
from plume.drafting.checker.form import check_act
from plume.drafting.checker.letters import check_letter
from plume.drafting.checker.life import check_life
from plume.drafting.checker.matters import check_matters
from plume.drafting.checker.questions import check_actes, check_questions
from plume.drafting.checker.seance import check_seance
from plume.drafting.checker.visas import check_visas
from plume.drafting.checker.wording import check_wording
from plume.drafting.document import DraftWarning

# The form checks' codes, kept under their historical name.
CHECK_CODES = FORM_CODES

__all__ = [
    "CHECK_CODES",
    "FORM_CODES",
    "LEGAL_CODES",
    "SOURCES",
    "CheckContext",
    "check_act",
    "check_legality",
]


def check_legality(ctx: CheckContext) -> list[DraftWarning]:
    """What the contrôle de légalité or a careful secretary would raise, for every kind (most
    checks concern acts; letters and articles have their own). Never raises on odd text."""
    warnings = [
        *check_seance(ctx),
        *check_visas(ctx),
        *check_wording(ctx),
        *check_questions(ctx),
        *check_matters(ctx),
        *check_letter(ctx),
        *check_life(ctx),
        *check_actes(ctx),
    ]
    order = {code: index for index, code in enumerate(LEGAL_CODES)}
    return sorted(warnings, key=lambda w: order.get(w.code, len(order)))
