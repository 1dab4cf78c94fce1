"""Between the drafts table and the API: a draft as answered, a document as stored, the
answer kept for the retries of an Idempotency-Key, and a draft's actions as audited."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import status

from plume.audit.trail import AuditTrail
from plume.calls.context import StoredResponse, Usage
from plume.drafting.document import ActeNature, DraftWarning, Sections
from plume.drafting.erasure import Erased
from plume.drafting.finishing import FinishedDocument
from plume.drafting.schemas import DraftOut, ReviewerOut, ReviewOut, UsageOut
from plume.hashing import digest
from plume.models import Draft, DraftStatus
from plume.web.sse import sse


def draft_out(draft: Draft) -> DraftOut:
    review = None
    if draft.review_decision is not None and draft.reviewed_at is not None:
        review = ReviewOut(
            decision=draft.review_decision,
            # Reviews stored before agents signed in have no agent: declared, not verified.
            reviewer=ReviewerOut(
                name=draft.reviewer_name or "",
                title=draft.reviewer_title or "",
                verified=draft.reviewed_by_agent_id is not None,
                agent_id=draft.reviewed_by_agent_id,
            ),
            comment=draft.review_comment,
            reviewed_at=draft.reviewed_at,
            reviewed_by=draft.reviewed_by_key_id,
        )
    usage = None
    if draft.status is not DraftStatus.PROCESSING:
        usage = UsageOut(
            provider=draft.provider,
            model=draft.model,
            prompt_tokens=draft.prompt_tokens,
            completion_tokens=draft.completion_tokens,
            total_tokens=draft.prompt_tokens + draft.completion_tokens,
            cost_eur=float(draft.cost_eur),
            energy_kwh=draft.energy_kwh,
            gwp_kgco2eq=draft.gwp_kgco2eq,
            fallbacks=draft.fallbacks,
            pseudonymised=draft.pseudonymised or 0,
        )
    return DraftOut(
        id=draft.id,
        kind=draft.kind,
        status=draft.status.value,
        title=draft.title,
        text=draft.text,
        sections=Sections.model_validate(draft.sections) if draft.sections else None,
        warnings=[DraftWarning.model_validate(w) for w in draft.warnings],
        acte_nature=ActeNature.model_validate(draft.acte_nature) if draft.acte_nature else None,
        usage=usage,
        ai_notice=draft.ai_notice,
        review=review,
        failure_reason=draft.failure_reason,
        model_group=draft.model_group,
        created_at=draft.created_at,
        created_by=draft.created_by_key_id,
    )


def apply_document(draft: Draft, document: FinishedDocument, usage: Usage) -> None:
    draft.title = document.title
    draft.text = document.text
    draft.sections = document.sections.model_dump() if document.sections else None
    draft.warnings = [w.model_dump() for w in document.warnings]
    draft.acte_nature = document.acte_nature.model_dump() if document.acte_nature else None
    draft.provider = usage.provider
    draft.model = usage.model
    draft.prompt_tokens = usage.prompt_tokens
    draft.completion_tokens = usage.completion_tokens
    draft.cost_eur = usage.cost_eur
    draft.energy_kwh = usage.energy_kwh
    draft.gwp_kgco2eq = usage.gwp_kgco2eq
    draft.fallbacks = usage.fallbacks
    draft.pseudonymised = usage.pseudonymised


def answer_headers(status_code: int, draft: DraftOut) -> dict[str, str]:
    headers = {"Location": f"/v1/drafts/{draft.id}"}
    if status_code == status.HTTP_202_ACCEPTED:
        headers["Retry-After"] = "5"
    return headers


def stored_answer(status_code: int, draft: DraftOut | None) -> StoredResponse:
    """A draft's answer as kept for the retries of its Idempotency-Key."""
    assert draft is not None
    return StoredResponse(
        status_code,
        "application/json",
        draft.model_dump_json().encode(),
        answer_headers(status_code, draft),
    )


def streamed_answer(transcript: Callable[[], bytes], draft: DraftOut | None) -> StoredResponse:
    """A streamed draft's answer: the events its client received, then the draft."""
    assert draft is not None
    return StoredResponse(200, "text/event-stream", transcript() + sse(draft, "draft"))


# -- a draft's actions in the audit trail (the API's and the workspace's alike) ----------


async def record_review(audit: AuditTrail, draft: Draft, decision: str) -> None:
    """The review in the audit trail (the API's and the workspace's alike)."""
    # The reviewer's name is part of the act's record; the comment is the commune's text.
    await audit.record(
        draft.organization_id,
        "draft.review",
        target=("draft", str(draft.id)),
        details={
            "decision": decision,
            "reviewer": {
                "name": draft.reviewer_name,
                "title": draft.reviewer_title,
                "verified": draft.reviewed_by_agent_id is not None,
            },
            "kind": draft.kind,
            "text": digest(draft.text),
        },
    )


async def record_edit(audit: AuditTrail, draft: Draft, text_before: str) -> None:
    """An edit in the audit trail: which text became which, by their digests (never text)."""
    await audit.record(
        draft.organization_id,
        "draft.edit",
        target=("draft", str(draft.id)),
        details={"kind": draft.kind, "before": digest(text_before), "after": digest(draft.text)},
    )


async def record_erasure(audit: AuditTrail, erased: Erased) -> None:
    await audit.record(
        erased.organization_id,
        "draft.erase",
        target=("draft", str(erased.draft_id)),
        details={"kind": erased.kind, "text": {"sha256": erased.text_digest}},
    )
