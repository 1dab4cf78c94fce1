"""From a provider's answer to a draft: the text cleaned, the act's sections parsed and
checked, its ACTES nature classified, the warnings a reviewer needs."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from plume.credentials.auth import Principal
from plume.drafting import actes
from plume.drafting.checker import CheckContext, check_act, check_legality
from plume.drafting.document import ACT_KINDS, ActeNature, DraftWarning, Sections, TenantIdentity
from plume.drafting.offline import TO_COMPLETE, compose
from plume.drafting.parsing import parse_act
from plume.drafting.prompts import read_fenced_request
from plume.french import KIND_NOUNS

# "Nature ACTES : 6.1", the line a model is asked to end with. Its leading spaces only: the
# blank lines before it are found by `_without_actes_lines`, since a leading "\s*" would read
# every following blank line from every line start (20,000 newlines took seconds).
_ACTES_LINE = re.compile(
    r"^[^\S\n]*+\**Nature ACTES\**\s*+:\s*+\**\s*+([0-9]{1,2}(?:\.[0-9]{1,2})*)\**.*$",
    re.MULTILINE | re.IGNORECASE,
)
_HEADING = re.compile(r"^#{1,3}\s+(.+)$", re.MULTILINE)


@dataclass(slots=True)
class FinishedDocument:
    title: str | None
    text: str
    sections: Sections | None
    warnings: list[DraftWarning]
    acte_nature: ActeNature | None


def offline_composer(messages: list[dict[str, Any]]) -> str | None:
    """How the offline provider answers a drafting prompt: with a document built from the
    request's own fields (registered by the application, plume.app)."""
    fenced = read_fenced_request(messages)
    return compose(*fenced) if fenced is not None else None


def identity_of(principal: Principal) -> TenantIdentity:
    policy = principal.policy
    return TenantIdentity(
        commune_name=principal.organization.name,
        insee_code=principal.organization.insee_code,
        epci_name=principal.epci_name,
        tribunal_administratif=policy.tribunal_administratif,
        population=policy.population,
        publication_mode=policy.publication_mode,
        mayor=policy.mayor.model_dump() if policy.mayor else None,
        secretary=policy.secretary.model_dump() if policy.secretary else None,
    )


def finish_document(
    kind: str,
    raw_text: str,
    fields: dict[str, Any],
    identity: TenantIdentity,
    *,
    offline: bool,
) -> FinishedDocument:
    """Turn the provider's answer into the draft: sections, warnings, ACTES nature.

    An answer that cannot be parsed is kept as it is, with a warning: never a failure.
    """
    suggestion, text = _without_actes_lines(raw_text)
    warnings: list[DraftWarning] = []
    sections: Sections | None = None
    acte_nature: ActeNature | None = None
    if kind in ACT_KINDS:
        sections, parse_warnings = parse_act(kind, text)
        warnings += parse_warnings
        unparsed = any(w.code == "unparsed_answer" for w in parse_warnings)
        warnings += [
            w
            for w in check_act(kind, sections, text, identity.tribunal_administratif)
            # An answer with no article at all is already said to be unparsed.
            if not (unparsed and w.code == "missing_articles")
        ]
        rule_based = actes.classify(kind, fields)
        acte_nature = actes.merge_suggestion(rule_based, None if offline else suggestion)
    warnings += check_legality(
        CheckContext(
            kind=kind,
            text=text,
            sections=sections or Sections(),
            fields=fields,
            population=identity.population,
            publication_mode=identity.publication_mode,
            acte_code=acte_nature.code if acte_nature else None,
            acte_label=acte_nature.label if acte_nature else None,
        )
    )
    if offline:
        warnings.append(
            DraftWarning(
                code="offline_draft",
                message=_offline_message(kind, text),
            )
        )
    elif TO_COMPLETE in text:
        warnings.append(
            DraftWarning(
                code="missing_information",
                message="Des informations manquent : complétez les passages marqués [À COMPLÉTER].",
            )
        )
    title = (sections.title if sections and sections.title else None) or fields.get("subject")
    if title is None:
        heading = _HEADING.search(text)
        title = heading.group(1).strip() if heading else KIND_NOUNS.get(kind)
    return FinishedDocument(title, text, sections, warnings, acte_nature)


def _without_actes_lines(raw_text: str) -> tuple[str | None, str]:
    """The ACTES code the answer suggests, and the answer without its "Nature ACTES" lines,
    each with the blank lines just before it (as the single pattern this replaces removed)."""
    suggestion: str | None = None
    kept: list[str] = []
    end = 0
    for line in _ACTES_LINE.finditer(raw_text):
        suggestion = suggestion or line.group(1)
        start = end + len(raw_text[end : line.start()].rstrip())
        if start > 0 and raw_text[start - 1] != "\n":
            start = raw_text.index("\n", start) + 1  # from the next line start on
        kept.append(raw_text[end:start])
        end = line.end()
    kept.append(raw_text[end:])
    return suggestion, "".join(kept).strip() + "\n"


def _offline_message(kind: str, text: str) -> str:
    """What an agent must do with a draft written without a model: an article or a letter
    repeats the request's points as they were typed, and only a draft that has [À COMPLÉTER]
    passages is told to complete them."""
    message = "Brouillon construit sans IA à partir de vos seuls éléments : "
    if kind == "bulletin_article":
        message += (
            "les points clés y sont repris tels que vous les avez écrits ; rédigez l'article "
            "autour d'eux pour les habitants"
        )
    elif kind == "courrier":
        message += "chaque point y devient une phrase ; reformulez la lettre pour son destinataire"
    else:
        message += "relisez-le et reformulez si besoin"
    if TO_COMPLETE in text:
        message += ", puis complétez les passages marqués [À COMPLÉTER]"
    return message + "."
