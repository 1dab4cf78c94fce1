"""The agents' workspace, /app: server-rendered French pages for the people of a mairie, who
sign in with ProConnect and never call the API. Every page uses the same services as the API
(no second set of rules); only a signed-in agent's session opens it, never an API key. Out
of the OpenAPI description."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlencode

import structlog
from fastapi import APIRouter, Request, Response, status
from fastapi.responses import JSONResponse, RedirectResponse
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import UploadFile

from plume.audit.trail import AuditTrail, actor_of
from plume.calls.dependencies import Calls
from plume.config import Settings
from plume.credentials.auth import Principal
from plume.db import enter_tenant_context
from plume.drafting import synthese
from plume.drafting.erasure import erase_for, may_erase
from plume.drafting.records import draft_out, record_edit, record_erasure, record_review
from plume.drafting.schemas import (
    SOURCE_MAX,
    DraftOut,
    ReviewRequest,
    SyntheseRequest,
    request_fields,
)
from plume.drafting.service import DraftingService
from plume.errors import Forbidden, NotFound, PlumeError, Unauthenticated, invalid_field
from plume.identity.sessions import CSRF_COOKIE, SESSION_COOKIE, authenticate_session
from plume.models import DraftStatus
from plume.quotas.service import QuotaService
from plume.web.pagination import next_cursor, page_request
from plume.web.transaction import DBSession
from plume.workspace import forms, uploads
from plume.workspace.pages import render, static_file

logger = structlog.get_logger("plume.workspace")

router = APIRouter(prefix="/app", include_in_schema=False)

HOME = "/app"
SYNTHESE_FORM = "/app/rediger/synthese"
RECENT = 30
# The cursors of the pages before this one, so that « Précédents » can go back (a cursor
# only leads forward); a longer trail keeps its last TRAIL_MAX (the links still work, the
# page's number then counts from there).
TRAIL_MAX = 100
API_KEY_REFUSED = (
    "L'espace de travail est réservé aux agents connectés avec ProConnect : une clé d'API "
    "ou un client OAuth2 ne l'ouvre pas (ils utilisent l'API, /v1)."
)


# -- who is there ----------------------------------------------------------------------------


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _drafting(request: Request) -> DraftingService:
    service: DraftingService = request.app.state.drafting
    return service


async def _signed_in(request: Request, session: AsyncSession) -> Principal | None:
    """The signed-in agent, or None (no session, or an ended one: the sign-in page). An
    Authorization header is refused: the workspace is for people, the API for programs.
    Unsafe requests are checked for their CSRF token (form field `csrf_token`)."""
    if "authorization" in request.headers:
        raise Forbidden(API_KEY_REFUSED)
    if SESSION_COOKIE not in request.cookies:
        return None
    try:
        principal = await authenticate_session(request, session, _settings(request))
    except Unauthenticated:
        return None
    request.state.principal = principal
    return principal


async def _agent(request: Request, session: AsyncSession) -> Principal | None:
    """The signed-in agent, with the transaction in its tenant's context."""
    principal = await _signed_in(request, session)
    if principal is not None:
        await enter_tenant_context(session, principal.scope)
    return principal


def _page(
    request: Request, template: str, context: dict[str, Any], status_code: int = 200
) -> Response:
    settings = _settings(request)
    base = {
        "csrf_token": request.cookies.get(CSRF_COOKIE, ""),
        "forms": forms.FORMS,
        "sign_in_enabled": settings.sign_in_enabled,
    }
    return render(
        template, {**base, **context}, issuer=settings.oidc_issuer, status_code=status_code
    )


def _error_page(request: Request, error: PlumeError) -> Response:
    return _page(
        request,
        "erreur.html",
        {"title": error.title, "detail": error.detail, "principal": None},
        error.status,
    )


def _to_home() -> Response:
    return RedirectResponse(HOME, status_code=status.HTTP_303_SEE_OTHER)


def _audit(request: Request, session: AsyncSession, principal: Principal) -> AuditTrail:
    return AuditTrail(session, actor_of(request, principal))


async def _posted(request: Request) -> dict[str, str]:
    return (await _posted_with_file(request))[0]


async def _posted_with_file(request: Request) -> tuple[dict[str, str], UploadFile | None]:
    """The form's text fields, and its file if one was chosen. The same limits as the CSRF
    check's reading of a multipart form (which parsed it first)."""
    form = await request.form(max_files=1, max_fields=100, max_part_size=SOURCE_MAX)
    texts = {name: value for name, value in form.items() if isinstance(value, str)}
    files = [value for value in form.values() if isinstance(value, UploadFile) and value.filename]
    return texts, files[0] if files else None


async def _synthese_source(posted: dict[str, str], upload: UploadFile | None) -> dict[str, str]:
    """The synthèse's source: the pasted text or the file's, never both, never neither."""
    pasted = posted.get("source_text", "").strip()
    if upload is not None and pasted:
        raise uploads.refused("Collez un texte ou joignez un fichier, pas les deux.")
    if upload is not None:
        return {**posted, "source_text": await uploads.read_upload(upload)}
    if not pasted:
        raise invalid_field("source_text", "Collez un texte ou joignez un fichier.")
    return posted


# -- home ------------------------------------------------------------------------------------


@router.get("/static/{name}")
async def static(name: str) -> Response:
    found = static_file(name)
    if found is None:
        return Response("Introuvable.", status_code=404, media_type="text/plain")
    content, media_type = found
    return Response(content, media_type=media_type, headers={"Cache-Control": "max-age=3600"})


@router.get("")
async def home(
    request: Request,
    session: DBSession,
    kind: str | None = None,
    statut: str | None = None,
    efface: str | None = None,
    suite: str | None = None,
) -> Response:
    """The newest drafts, RECENT a page: `suite` is the trail of cursors that led to this
    page (dot-separated), the last one this page's own."""
    try:
        principal = await _agent(request, session)
        if principal is None:
            return _page(request, "connexion.html", {"principal": None})
        kind = kind if kind in forms.BY_KIND else None
        statut = statut if statut in {s.value for s in DraftStatus} else None
        trail = [cursor for cursor in (suite or "").split(".") if cursor][-TRAIL_MAX:]
        page = page_request(RECENT, trail[-1] if trail else None)
        found = await _drafting(request).list_page(
            session, principal, page, kind, DraftStatus(statut) if statut else None
        )
    except PlumeError as error:
        return _error_page(request, error)
    rows, cursor = next_cursor(list(found), page, lambda row: (row.created_at, row.id))
    filters = {"kind": kind or "", "statut": statut or ""}

    def link(cursors: list[str]) -> str:
        query = {**filters, "suite": ".".join(cursors)}
        return f"{HOME}?" + urlencode({name: value for name, value in query.items() if value})

    quotas = await QuotaService(session, request.app.state.clock).status(
        [level.id for level in principal.chain]
    )
    return _page(
        request,
        "accueil.html",
        {
            "principal": principal,
            "drafts": [draft_out(row) for row in rows],
            "kind": kind,
            "statut": statut,
            "page_number": len(trail) + 1,
            "next_page": link([*trail, cursor]) if cursor else None,
            "previous_page": link(trail[:-1]) if trail else None,
            "quotas": [
                q
                for q in quotas
                if q.period == "month" and q.organization_id == principal.organization_id
            ],
            "erased": efface is not None,
        },
    )


# -- drafting --------------------------------------------------------------------------------


def _form_page(
    request: Request,
    principal: Principal,
    form: forms.KindForm,
    values: dict[str, str],
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    return _page(
        request,
        "formulaire.html",
        {
            "principal": principal,
            "form": form,
            "values": values,
            "errors": errors or {},
            "accept": uploads.ACCEPT,
            "max_bytes": uploads.MAX_BYTES,
        },
        status_code,
    )


@router.get("/rediger/{slug}")
async def drafting_form(
    slug: str, request: Request, session: DBSession, exemple: str | None = None
) -> Response:
    form = forms.BY_SLUG.get(slug)
    try:
        principal = await _agent(request, session)
        if form is None:
            raise NotFound("Ce type de document n'existe pas.")
    except PlumeError as error:
        return _error_page(request, error)
    if principal is None:
        return _to_home()
    values = forms.values_of(form, forms.examples().get(form.kind, {})) if exemple else {}
    return _form_page(request, principal, form, values)


@router.post("/rediger/{slug}")
async def draft(slug: str, request: Request, session: DBSession, calls: Calls) -> Response:
    """The API's POST /v1/drafts for a form: the same schema, route, estimate, quota and
    provider call; the errors said next to their fields (422), the draft shown on success."""
    form = forms.BY_SLUG.get(slug)
    try:
        # Not in the tenant's context yet: the provider call's unit of work enters it.
        principal = await _signed_in(request, session)
        if form is None:
            raise NotFound("Ce type de document n'existe pas.")
    except PlumeError as error:
        return _error_page(request, error)
    if principal is None:
        return _to_home()
    posted, upload = await _posted_with_file(request)
    values = {name: posted.get(name, "") for name in form.field_names()}
    try:
        if form.kind == "synthese":
            posted = await _synthese_source(posted, upload)
    except PlumeError as error:
        return _form_page(request, principal, form, values, _field_errors(error), 422)
    payload, errors = forms.read(form, posted)
    if payload is None:
        return _form_page(request, principal, form, values, errors, 422)
    try:
        created = await _create(request, principal, calls, form.kind, payload)
    except PlumeError as error:
        await session.rollback()
        errors = {"": error.detail, **_field_errors(error)}
        return _form_page(request, principal, form, values, errors, error.status)
    return RedirectResponse(f"/app/brouillons/{created.id}", status_code=303)


def _field_errors(error: PlumeError) -> dict[str, str]:
    return {e.field: e.message for e in error.errors or []}


async def _create(
    request: Request, principal: Principal, calls: Calls, kind: str, payload: Any
) -> DraftOut:
    """As POST /v1/drafts without `stream`: a long synthèse is queued as a job (its page
    says it is being written), anything else drafted in one call."""
    service = _drafting(request)
    route = service.route_for(principal, kind, None)
    fields = request_fields(payload)
    long = None
    if isinstance(payload, SyntheseRequest):
        parts = await synthese.plan(service.policy, route, payload)
        long = parts if parts.long else None
    if long is not None:
        estimate = synthese.estimate(service.policy, route, long)
    else:
        estimate = await service.estimate(principal, route, kind, fields, None)
    async with calls.open(
        principal, kind=kind, route=route, estimate=estimate, fields=fields
    ) as call:
        if long is not None:
            queued = await synthese.queue(call, fields)
            request.app.state.synthese_worker.wake.set()
            return queued
        return await service.create(call, kind, fields, None)


@router.post("/rediger/{slug}/flux")
async def draft_live(slug: str, request: Request, session: DBSession, calls: Calls) -> Response:
    """« Rédiger » with the script on (plume.js): the same draft, its text shown as it is
    written (Server-Sent Events: `delta`, then `draft` or `error`). Anything else than a
    valid form of a short document answers 422 with no body, and the script then posts the
    form itself, whose page says what is wrong (or waits for a long synthèse's job)."""
    form = forms.BY_SLUG.get(slug)
    try:
        principal = await _signed_in(request, session)
    except PlumeError as error:
        return _error_page(request, error)
    if principal is None or form is None or form.kind == "synthese":
        return Response(status_code=422)
    payload, _ = forms.read(form, await _posted(request))
    if payload is None:
        return Response(status_code=422)
    service = _drafting(request)
    fields = request_fields(payload)
    try:
        route = service.route_for(principal, form.kind, None)
        estimate = await service.estimate(principal, route, form.kind, fields, None)
        async with calls.open(
            principal, kind=form.kind, route=route, estimate=estimate, fields=fields
        ) as call:
            body = service.stream(call, form.kind, fields, None)
            return call.streaming_response(body, call.response_headers())
    except PlumeError:
        await session.rollback()
        return Response(status_code=422)


# -- one draft -------------------------------------------------------------------------------


async def _draft_page(
    request: Request,
    session: AsyncSession,
    principal: Principal,
    draft_id: uuid.UUID,
    *,
    errors: dict[str, str] | None = None,
    text: str | None = None,
    status_code: int = 200,
) -> Response:
    row = await _drafting(request).get(session, principal, draft_id)
    out = draft_out(row)
    form = forms.BY_KIND.get(out.kind)
    return _page(
        request,
        "brouillon.html",
        {
            "principal": principal,
            "draft": out,
            "kind_label": form.label if form else out.kind,
            "may_erase": may_erase(principal, row) and out.status not in ("erased", "processing"),
            "errors": errors or {},
            "text": out.text if text is None else text,
            "progress": _progress(row.progress),
        },
        status_code,
    )


@router.get("/brouillons/{draft_id}")
async def draft_page(draft_id: uuid.UUID, request: Request, session: DBSession) -> Response:
    try:
        principal = await _agent(request, session)
        if principal is None:
            return _to_home()
        return await _draft_page(request, session, principal, draft_id)
    except PlumeError as error:
        return _error_page(request, error)


def _progress(recorded: dict[str, Any] | None) -> dict[str, int]:
    """A job's progress as the worker records it: parts summarised, parts known so far."""
    done, total = (recorded or {}).get("done", 0), (recorded or {}).get("total", 0)
    return {"done": int(done), "total": int(total)}


@router.get("/brouillons/{draft_id}/avancement")
async def progress(draft_id: uuid.UUID, request: Request, session: DBSession) -> Response:
    """A synthèse job's progress for plume.js's progress bar: its state, parts done, parts
    known so far (more can come: the summaries are summarised in turn when too long)."""
    try:
        principal = await _agent(request, session)
        if principal is None:
            raise Unauthenticated("Votre session a pris fin : reconnectez-vous.")
        row = await _drafting(request).get(session, principal, draft_id)
    except PlumeError as error:
        return JSONResponse({"detail": error.detail}, status_code=error.status)
    body = {"status": row.status.value, **_progress(row.progress)}
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


@router.post("/brouillons/{draft_id}/relecture")
async def review(draft_id: uuid.UUID, request: Request, session: DBSession) -> Response:
    """« Approuver » or « Rejeter », signed by the signed-in agent (verified)."""
    try:
        principal = await _agent(request, session)
        if principal is None:
            return _to_home()
        decision = (await _posted(request)).get("decision")
        if decision not in ("approved", "rejected"):
            raise NotFound("Décision inconnue.")
        payload = ReviewRequest(decision=decision)
        reviewed = await _drafting(request).review(session, principal, draft_id, payload)
        await record_review(_audit(request, session, principal), reviewed, decision)
    except PlumeError as error:
        return _error_page(request, error)
    return RedirectResponse(f"/app/brouillons/{draft_id}", status_code=303)


@router.post("/brouillons/{draft_id}/texte")
async def edit(draft_id: uuid.UUID, request: Request, session: DBSession) -> Response:
    """« Enregistrer »: the API's PATCH /v1/drafts/{id}, before review only."""
    try:
        principal = await _agent(request, session)
        if principal is None:
            return _to_home()
        text = (await _posted(request)).get("text", "")
        if not text.strip():
            errors = {"text": "Le texte ne peut pas être vide."}
            return await _draft_page(
                request, session, principal, draft_id, errors=errors, text=text, status_code=422
            )
        edited = await _drafting(request).edit(session, principal, draft_id, text)
        await record_edit(_audit(request, session, principal), edited.draft, edited.text_before)
    except PlumeError as error:
        return _error_page(request, error)
    return RedirectResponse(f"/app/brouillons/{draft_id}", status_code=303)


@router.post("/brouillons/{draft_id}/effacer")
async def erase(draft_id: uuid.UUID, request: Request, session: DBSession) -> Response:
    """« Effacer » shows a confirmation; its one button « Confirmer » erases for good."""
    try:
        principal = await _agent(request, session)
        if principal is None:
            return _to_home()
        if (await _posted(request)).get("confirme") != "1":
            out = draft_out(await _drafting(request).get(session, principal, draft_id))
            return _page(request, "effacer.html", {"principal": principal, "draft": out})
        erased = await erase_for(session, principal, draft_id)
        await record_erasure(_audit(request, session, principal), erased)
    except PlumeError as error:
        return _error_page(request, error)
    return RedirectResponse(f"{HOME}?efface=1", status_code=303)
