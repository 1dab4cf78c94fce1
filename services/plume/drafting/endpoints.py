"""HTTP routes for drafts: create (plain, streamed, or as a job), read, list, review, export."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Annotated, Literal

import anyio
from fastapi import APIRouter, Body, Query, Request, Response, status
from fastapi.responses import JSONResponse

from plume.audit.recorder import Audit, client_address, digest
from plume.credentials.auth import AnyKey, ProviderCaller
from plume.drafting.export import ExportableDraft, export
from plume.drafting.schemas import (
    DraftOut,
    DraftRequest,
    ReviewRequest,
    SyntheseRequest,
    request_fields,
)
from plume.drafting.service import DraftingService, draft_out
from plume.errors import PayloadTooLarge
from plume.idempotency import request_key
from plume.models import DraftStatus
from plume.pagination import Page, PageParams, next_cursor
from plume.provider_calls import CallContext, StoredResponse
from plume.streaming import SettledStreamingResponse
from plume.transaction import CallSession, DBSession

router = APIRouter(prefix="/v1/drafts", tags=["drafting"])

_SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def _service(request: Request) -> DraftingService:
    service: DraftingService = request.app.state.drafting
    return service


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Draft a document; `stream: true` answers Server-Sent Events",
    response_model=DraftOut,
    responses={202: {"model": DraftOut, "description": "A long synthèse, drafted as a job"}},
)
async def create_draft(
    payload: Annotated[DraftRequest, Body()],
    request: Request,
    principal: ProviderCaller,
    session: CallSession,
) -> Response:
    settings = request.app.state.settings
    if payload.kind != "synthese":
        # Only synthèses may use the larger body allowed on this route.
        # Counted while reading, so a chunked body (no Content-Length) is held to it too.
        length = getattr(request.state, "body_bytes", 0)
        if length > settings.max_body_bytes:
            raise PayloadTooLarge(
                "Le corps de la requête dépasse la taille autorisée pour ce type de document "
                f"({settings.max_body_bytes // 1024} Kio) ; seules les synthèses acceptent "
                "des textes plus longs."
            )
    service = _service(request)
    route = service.plan(principal, payload.kind, payload.model_group)
    idempotency_key, request_hash = await request_key(request)
    fields = request_fields(payload)
    plan = (
        await service.plan_synthese(route, payload)
        if isinstance(payload, SyntheseRequest)
        else None
    )
    context = CallContext(
        principal=principal,
        kind=payload.kind,
        route=route,
        request_id=getattr(request.state, "request_id", None),
        idempotency_key=idempotency_key,
        request_hash=request_hash,
        client_address=client_address(request),
        input_digest=digest(await request.body()),
        estimate=(
            service.estimate_long_synthese(route, plan)
            if plan is not None and plan.long
            else service.estimate(principal, route, payload.kind, fields, payload.max_output_tokens)
        ),
    )
    if not payload.stream:
        long_job = plan is not None and plan.long
        context.responder = _stored_answer(202 if long_job else 201)
    await service.calls.before(context, session)
    headers = context.response_headers()
    if isinstance(payload, SyntheseRequest) and plan is not None and plan.long:
        if payload.stream:
            return SettledStreamingResponse(
                service.synthese_stream(context, payload, plan),
                context=context,
                abandon=service.release(context),
                headers={**_SSE_HEADERS, **headers},
            )
        draft = await service.enqueue_synthese(context, fields)
        request.app.state.synthese_worker.wake.set()
        return JSONResponse(
            draft.model_dump(mode="json"),
            status_code=status.HTTP_202_ACCEPTED,
            headers={**_answer_headers(202, draft), **headers},
        )
    if payload.stream:
        return SettledStreamingResponse(
            service.stream(context, payload.kind, fields, payload.max_output_tokens),
            context=context,
            abandon=service.release(context),
            headers={**_SSE_HEADERS, **headers},
        )
    draft = await service.create(context, payload.kind, fields, payload.max_output_tokens)
    return JSONResponse(
        draft.model_dump(mode="json"),
        status_code=status.HTTP_201_CREATED,
        headers={**_answer_headers(201, draft), **headers},
    )


def _answer_headers(status_code: int, draft: DraftOut) -> dict[str, str]:
    headers = {"Location": f"/v1/drafts/{draft.id}"}
    if status_code == status.HTTP_202_ACCEPTED:
        headers["Retry-After"] = "5"
    return headers


def _stored_answer(status_code: int) -> Callable[[DraftOut], StoredResponse]:
    """How a draft's answer is kept for the retries of its Idempotency-Key."""

    def stored(draft: DraftOut) -> StoredResponse:
        return StoredResponse(
            status_code,
            "application/json",
            draft.model_dump_json().encode(),
            _answer_headers(status_code, draft),
        )

    return stored


@router.get("", summary="List your organisation's drafts, newest first")
async def list_drafts(
    request: Request,
    session: DBSession,
    principal: AnyKey,
    page: PageParams,
    kind: Annotated[
        Literal["arrete", "deliberation", "courrier", "bulletin_article", "synthese"] | None,
        Query(),
    ] = None,
    status_filter: Annotated[
        Literal["draft", "processing", "approved", "rejected", "failed"] | None,
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


@router.post("/{draft_id}/review", summary="Approve or reject a draft, as a named person")
async def review_draft(
    draft_id: uuid.UUID,
    payload: ReviewRequest,
    request: Request,
    session: DBSession,
    principal: AnyKey,
    audit: Audit,
) -> DraftOut:
    draft = await _service(request).review(session, principal, draft_id, payload)
    # The reviewer's name is part of the act's record; the comment is the commune's text.
    await audit.record(
        draft.organization_id,
        "draft.review",
        target=("draft", str(draft.id)),
        details={
            "decision": payload.decision,
            "reviewer": {"name": payload.reviewer.name, "title": payload.reviewer.title},
            "kind": draft.kind,
            "text": digest(draft.text),
        },
    )
    return draft_out(draft)


@router.get("/{draft_id}/export", summary="The document as Markdown, Word (docx) or OpenDocument")
async def export_draft(
    draft_id: uuid.UUID,
    request: Request,
    session: DBSession,
    principal: AnyKey,
    audit: Audit,
    format: Annotated[Literal["md", "docx", "odt"], Query()] = "md",
) -> Response:
    draft = await _service(request).get(session, principal, draft_id)
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
