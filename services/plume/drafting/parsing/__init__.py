"""Parse a Markdown act, written by a model or by the offline composer, into its Sections."""

from __future__ import annotations

from plume.drafting.document import ACT_KINDS, DraftWarning, Sections
from plume.drafting.parsing.builder import Builder
from plume.drafting.parsing.markdown import lines
from plume.drafting.parsing.parts import UNPARSED_ANSWER, UNPARSED_MESSAGE, ActParts
from plume.drafting.parsing.vocabulary import VOTE_ANYWHERE

__all__ = [
    "UNPARSED_ANSWER",
    "UNPARSED_MESSAGE",
    "VOTE_ANYWHERE",
    "ActParts",
    "parse_act",
    "parse_act_parts",
]


def parse_act(kind: str, text: str) -> tuple[Sections, list[DraftWarning]]:
    """Sections of an arrêté or délibération; never raises. Other kinds give empty Sections."""
    if kind not in ACT_KINDS:
        return Sections(), []
    parts = parse_act_parts(kind, text)
    return parts.sections(), list(parts.warnings)


def parse_act_parts(kind: str, text: str) -> ActParts:
    """The finer-grained parse behind parse_act; never raises either."""
    builder = Builder(deliberation=kind == "deliberation")
    try:
        for line in lines(text or ""):
            builder.feed(line)
        return builder.result()
    except Exception:
        # A parser bug must not fail the draft: the text is kept and the agent is told.
        return ActParts(warnings=[DraftWarning(code=UNPARSED_ANSWER, message=UNPARSED_MESSAGE)])
