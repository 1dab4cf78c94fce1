"""HTTP routes for drafts: create (plain, streamed, or as a job), read, list, review, export."""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Literal

import anyio
from fastapi import APIRouter, Body, Query, Request, Response, status
from fastapi.responses import JSONResponse

from plume.audit.trail import Audit
from plume.calls.dependencies import Calls
from plume.credentials.auth import AnyKey, ProviderCaller
from plume.drafting import synthese
from plume.drafting.document import DocumentKind
from plume.drafting.erasure import erase_for
from plume.drafting.export import ExportableDraft, export
from plume.drafting.records import (
    answer_headers,
    draft_out,
    record_edit,
    record_erasure,
    record_review,
)
from plume.drafting.schemas import (
    DraftOut,
    DraftRequest,
    EditRequest,
    ReviewRequest,
    SyntheseRequest,
    request_fields,
)
from plume.drafting.service import DraftingService
from plume.errors import Conflict, Forbidden, NotFound, PayloadTooLarge, PlumeError
from plume.hashing import digest
from plume.models import DraftStatus
from plume.web.openapi import download, event_stream, merge, named_events, raises, schema_ref
from plume.web.pagination import Page, PageParams, next_cursor
from plume.web.transaction import DBSession

router = APIRouter(prefix="/v1/drafts", tags=["drafting"])


def draft_too_large(request: Request, kind: object) -> PayloadTooLarge | None:
    """/v1/drafts admits bodies up to the synthèse limit (the middleware's); any other kind
    over the general limit is a 413, whatever else is wrong with it. Counted while reading,
    so a chunked body (no Content-Length) is held to it too."""
    limit: int = request.app.state.settings.max_body_bytes
    if kind == "synthese" or getattr(request.state, "body_bytes", 0) <= limit:
        return None
    return PayloadTooLarge(
        "Le corps de la requête dépasse la taille autorisée pour ce type de document "
        f"({limit // 1024} Kio) ; seules les synthèses acceptent des textes plus longs."
    )


async def oversized_draft_request(request: Request) -> PlumeError | None:
    """For the validation-error handler: an oversized draft request is a 413 first."""
    limit: int = request.app.state.settings.max_body_bytes
    if request.url.path != router.prefix or getattr(request.state, "body_bytes", 0) <= limit:
        return None
    try:
        kind = json.loads(await request.body()).get("kind")
    except (ValueError, AttributeError):
        kind = None
    return draft_too_large(request, kind)


def _service(request: Request) -> DraftingService:
    service: DraftingService = request.app.state.drafting
    return service


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Draft a document; `stream: true` answers Server-Sent Events",
    response_model=DraftOut,
    responses=merge(
        {202: {"model": DraftOut, "description": "A long synthèse, drafted as a job"}},
        event_stream(
            "With `stream: true`: `delta` events, `progress` for a long synthèse, then one "
            "`draft` event (the stored draft) or one `error` event (a problem)",
            named_events(
                delta={
                    "type": "object",
                    "required": ["text"],
                    "properties": {"text": {"type": "string"}},
                },
                progress={
                    "type": "object",
                    "required": ["done", "total"],
                    "properties": {"done": {"type": "integer"}, "total": {"type": "integer"}},
                },
                draft=schema_ref("DraftOut"),
                error=schema_ref("Problem"),
            ),
        ),
    ),
)
async def create_draft(
    payload: Annotated[DraftRequest, Body()],
    request: Request,
    principal: ProviderCaller,
    calls: Calls,
) -> Response:
    too_large = draft_too_large(request, payload.kind)
    if too_large is not None:
        raise too_large
    service = _service(request)
    route = service.route_for(principal, payload.kind, payload.model_group)
    fields = request_fields(payload)
    long = None
    if isinstance(payload, SyntheseRequest):
        parts = await synthese.plan(service.policy, route, payload)
        long = parts if parts.long else None
    if long is not None:
        estimate = synthese.estimate(service.policy, route, long)
    else:
        estimate = await service.estimate(
            principal, route, payload.kind, fields, payload.max_output_tokens
        )
    async with calls.open(
        principal, kind=payload.kind, route=route, estimate=estimate, fields=fields
    ) as call:
        headers = call.response_headers()
        if isinstance(payload, SyntheseRequest) and long is not None:
            if payload.stream:
                limits = request.app.state.synthese_limits
                body = synthese.stream(call, payload, long, limits)
                return call.streaming_response(body, headers)
            draft = await synthese.queue(call, fields)
            request.app.state.synthese_worker.wake.set()
            return _answer(draft, status.HTTP_202_ACCEPTED, headers)
        if payload.stream:
            body = service.stream(call, payload.kind, fields, payload.max_output_tokens)
            return call.streaming_response(body, headers)
        draft = await service.create(call, payload.kind, fields, payload.max_output_tokens)
        return _answer(draft, status.HTTP_201_CREATED, headers)


def _answer(draft: DraftOut, status_code: int, headers: dict[str, str]) -> JSONResponse:
    return JSONResponse(
        draft.model_dump(mode="json"),
        status_code=status_code,
        headers={**answer_headers(status_code, draft), **headers},
    )


@router.get("", summary="List your organisation's drafts, newest first")
async def list_drafts(
    request: Request,
    session: DBSession,
    principal: AnyKey,
    page: PageParams,
    kind: Annotated[
        DocumentKind | None,
        Query(),
    ] = None,
    status_filter: Annotated[
        Literal["draft", "processing", "approved", "rejected", "failed", "erased"] | None,
        Query(alias="status"),
    ] = None,
) -> Page[DraftOut]:
    rows = await _service(request).list_page(
        session,
        principal,
        page,
        kind,
        DraftStatus(status_filter) if status_filter else None,
    )
    items, cursor = next_cursor(list(rows), page, lambda d: (d.created_at, d.id))
    return Page(items=[draft_out(d) for d in items], next_cursor=cursor)


@router.get("/{draft_id}", summary="Read a draft (poll it while a synthèse is processing)")
async def get_draft(
    draft_id: uuid.UUID, request: Request, session: DBSession, principal: AnyKey
) -> DraftOut:
    draft = await _service(request).get(session, principal, draft_id)
    return draft_out(draft)


@router.post(
    "/{draft_id}/review",
    summary="Approve or reject a draft, as a named person (verified when signed in)",
    responses=raises(Conflict, Forbidden),
)
async def review_draft(
    draft_id: uuid.UUID,
    payload: ReviewRequest,
    request: Request,
    session: DBSession,
    principal: AnyKey,
    audit: Audit,
) -> DraftOut:
    draft = await _service(request).review(session, principal, draft_id, payload)
    await record_review(audit, draft, payload.decision)
    return draft_out(draft)


@router.patch(
    "/{draft_id}",
    summary="Replace a draft's text before its review (sections and warnings recomputed)",
    responses=raises(Conflict, NotFound),
)
async def edit_draft(
    draft_id: uuid.UUID,
    payload: EditRequest,
    request: Request,
    session: DBSession,
    principal: AnyKey,
    audit: Audit,
) -> DraftOut:
    """Only a draft not yet reviewed (`status: "draft"`): 409 otherwise. The text is parsed
    and checked again; the audit trail records the digests of the old and new texts."""
    edited = await _service(request).edit(session, principal, draft_id, payload.text)
    await record_edit(audit, edited.draft, edited.text_before)
    return draft_out(edited.draft)


@router.get(
    "/{draft_id}/export",
    summary="The document as Markdown, Word (docx) or OpenDocument",
    response_class=Response,
    responses=download(
        "The document, as an attachment",
        "text/markdown",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "application/vnd.oasis.opendocument.text",
    ),
)
async def export_draft(
    draft_id: uuid.UUID,
    request: Request,
    session: DBSession,
    principal: AnyKey,
    audit: Audit,
    format: Annotated[Literal["md", "docx", "odt"], Query()] = "md",
) -> Response:
    draft = await _service(request).get(session, principal, draft_id)
    if draft.status is DraftStatus.ERASED:
        raise Conflict("Ce brouillon a été effacé : son texte n'existe plus.")
    out = draft_out(draft)
    exportable = ExportableDraft(
        id=str(out.id),
        kind=out.kind,
        title=out.title or out.kind,
        text=out.text,
        sections=out.sections,
        ai_notice=out.ai_notice,
        status=out.status,
        commune_name=principal.organization.name,
        created_at=out.created_at,
        reviewer_name=out.review.reviewer.name if out.review else None,
        reviewer_title=out.review.reviewer.title if out.review else None,
        reviewer_verified=out.review.reviewer.verified if out.review else False,
        reviewed_at=out.review.reviewed_at if out.review else None,
        acte_nature=out.acte_nature,
    )
    # Building a long docx takes seconds: keep it off the event loop.
    content, media_type, filename = await anyio.to_thread.run_sync(export, exportable, format)
    await audit.record(
        draft.organization_id,
        "draft.export",
        target=("draft", str(draft.id)),
        details={"format": format, "status": out.status, "file": digest(content)},
    )
    return Response(
        content,
        media_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.delete(
    "/{draft_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Erase a draft's texts for good (its author or a tenant admin)",
    responses=raises(Forbidden, NotFound, Conflict),
)
async def erase_draft(
    draft_id: uuid.UUID, session: DBSession, principal: AnyKey, audit: Audit
) -> Response:
    """The request, title, text, sections, warnings, comments, job progress and stored
    idempotent replays are erased; the id, kind, dates, review, usage and the text's digest
    stay, and `GET` shows `status: "erased"`."""
    erased = await erase_for(session, principal, draft_id)
    await record_erasure(audit, erased)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
