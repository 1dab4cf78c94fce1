"""/app/operateur: the operator's pages (Seine-Maritime Numérique's administrators, the
operator_admin role): the organisations (create an EPCI or a commune, suspend, reactivate,
edit the policy), each one's quotas, and usage and quotas across every tenant. The default
quotas each new EPCI or commune is given. The same services and audit records as
/v1/admin/organizations, /quotas, /v1/admin/default-quotas and /v1/admin/usage."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.background import BackgroundTask

from plume.credentials.auth import Principal
from plume.errors import PlumeError
from plume.models import DEFAULT_QUOTA_KINDS, ApiKeyRole
from plume.organizations.policy import ALL_HOSTING, ALL_KINDS
from plume.organizations.schemas import OrganizationCreate, OrganizationUpdate
from plume.organizations.service import OrganizationService
from plume.quotas.defaults import DefaultQuotaService, given_details
from plume.quotas.schemas import DefaultQuotaIn
from plume.quotas.service import QuotaService
from plume.usage.reports import usage_report
from plume.usage.schemas import GroupBy
from plume.web.transaction import DBSession
from plume.workspace import access, charts
from plume.workspace.access import Problems
from plume.workspace.admin_reports import (
    METRIC_LABELS,
    PERIOD_LABELS,
    csv_answer,
    report_dates,
    usage_context,
)
from plume.workspace.pages import amount

router = APIRouter(prefix="/app/operateur", include_in_schema=False)

BASE = "/app/operateur"
OPERATOR = ApiKeyRole.OPERATOR_ADMIN
KIND_LABELS = {"operator": "Opérateur", "epci": "EPCI", "commune": "Commune"}
HOSTING_LABELS = {"fr": "France", "eu": "Union européenne", "non_eu": "Hors Union européenne"}
METRICS = ("requests", "tokens", "cost_eur")
PERIODS = ("minute", "day", "month")
LISTS = ("allowed_kinds", "allowed_hosting", "verified_review_required")
TEXTS = ("tribunal_administratif", "publication_mode", "personal_data")
NUMBERS = ("population", "retention_days")
OFFICERS = ("mayor", "secretary")


def _context(principal: Principal, section: str) -> dict[str, Any]:
    return {
        "principal": principal,
        "section": section,
        "kind_labels": KIND_LABELS,
        "document_labels": charts.KIND_LABELS,
        "hosting_labels": HOSTING_LABELS,
        "all_kinds": ALL_KINDS,
        "all_hosting": ALL_HOSTING,
        "metric_labels": METRIC_LABELS,
        "period_labels": PERIOD_LABELS,
        "metrics": METRICS,
        "periods": PERIODS,
    }


def _refresh_metrics(request: Request, response: Response) -> Response:
    """plume_organization_info, read again once the change is committed (as the API does)."""
    info = getattr(request.app.state, "organization_info", None)
    if info is not None:
        response.background = BackgroundTask(info.refresh_after_change)
    return response


# -- the organisations -----------------------------------------------------------------------


async def _organisations_page(
    request: Request,
    session: AsyncSession,
    principal: Principal,
    values: dict[str, str] | None = None,
    problems: Problems | None = None,
) -> Response:
    organisations = await OrganizationService(session, principal.scope).list_all()
    names = {o.id: o.name for o in organisations}
    problems = problems or Problems()
    return access.page(
        request,
        "operateur/accueil.html",
        {
            **_context(principal, "organisations"),
            "organisations": sorted(
                organisations, key=lambda o: (o.kind.value != "operator", o.name)
            ),
            "names": names,
            "parents": [o for o in organisations if o.kind.value in ("operator", "epci")],
            "values": values or {},
            "problems": problems,
        },
        problems.status,
    )


@router.get("")
async def home(request: Request, session: DBSession) -> Response:
    try:
        principal = await access.admin(request, session, OPERATOR)
        return await _organisations_page(request, session, principal)
    except (PlumeError, access.SignInFirst) as error:
        return access.refusal_page(request, error)


@router.post("/organisations")
async def create(request: Request, session: DBSession) -> Response:
    """« Créer »: POST /v1/admin/organizations, with the operator's default quotas."""
    try:
        principal = await access.admin(request, session, OPERATOR)
        form = await access.posted(request)
        names = ("kind", "name", "parent_id", "insee_code", "siren", "siret")
        values = {name: form.get(name, "").strip() for name in names}
        body = {name: value for name, value in values.items() if value}
        service = OrganizationService(session, principal.scope)
        try:
            organization = await service.create(access.parsed(OrganizationCreate, body))
        except PlumeError as error:
            await session.rollback()
            problems = Problems.of(error)
            return await _organisations_page(request, session, principal, values, problems)
        view = await service.admin_view(organization)
        audit = access.audit_of(request, session, principal)
        target = ("organization", str(organization.id))
        await audit.record(organization.id, "organization.create", target, view.created_details())
        if given := await DefaultQuotaService(session).apply(organization):
            await audit.record(organization.id, "quota.update", target, given_details(given))
    except (PlumeError, access.SignInFirst) as error:
        return access.refusal_page(request, error)
    return _refresh_metrics(request, access.see(f"{BASE}/organisations/{organization.id}"))


async def _organisation_page(
    request: Request,
    session: AsyncSession,
    principal: Principal,
    organization_id: uuid.UUID,
    problems: Problems | None = None,
    typed: dict[str, str] | None = None,
) -> Response:
    service = OrganizationService(session, principal.scope)
    organization = await service.get(organization_id)
    view = await service.admin_view(organization)
    parent = await service.find(organization.parent_id) if organization.parent_id else None
    quotas = await QuotaService(session, request.app.state.clock).status([organization.id])
    limits = {f"limite_{q.metric}_{q.period}": amount(q.limit, q.metric) for q in quotas}
    problems = problems or Problems()
    return access.page(
        request,
        "operateur/organisation.html",
        {
            **_context(principal, "organisations"),
            "organisation": view,
            "parent": parent,
            "own": view.own_policy,
            "quotas": quotas,
            "limits": limits | (typed or {}),
            "problems": problems,
        },
        problems.status,
    )


@router.get("/organisations/{organization_id}")
async def organisation(
    organization_id: uuid.UUID, request: Request, session: DBSession
) -> Response:
    try:
        principal = await access.admin(request, session, OPERATOR)
        return await _organisation_page(request, session, principal, organization_id)
    except (PlumeError, access.SignInFirst) as error:
        return access.refusal_page(request, error)


async def _update(
    request: Request,
    session: AsyncSession,
    principal: Principal,
    organization_id: uuid.UUID,
    body: dict[str, Any],
) -> Response:
    """PATCH /v1/admin/organizations/{id}, recorded as `organization.update`."""
    service = OrganizationService(session, principal.scope)
    try:
        payload = access.parsed(OrganizationUpdate, body)
        organization = await service.update(organization_id, payload)
    except PlumeError as error:
        await session.rollback()
        return await _organisation_page(
            request, session, principal, organization_id, Problems.of(error)
        )
    await access.audit_of(request, session, principal).record(
        organization.id,
        "organization.update",
        target=("organization", str(organization.id)),
        details={"changes": payload.model_dump(mode="json", exclude_unset=True)},
    )
    return _refresh_metrics(request, access.see(f"{BASE}/organisations/{organization_id}"))


@router.post("/organisations/{organization_id}/statut")
async def set_status(organization_id: uuid.UUID, request: Request, session: DBSession) -> Response:
    """« Suspendre » or « Réactiver »: its agents, keys and clients stop (or start) at once."""
    try:
        principal = await access.admin(request, session, OPERATOR)
        status = (await access.posted(request)).get("status")
        return await _update(request, session, principal, organization_id, {"status": status})
    except (PlumeError, access.SignInFirst) as error:
        return access.refusal_page(request, error)


@router.post("/organisations/{organization_id}/politique")
async def set_policy(organization_id: uuid.UUID, request: Request, session: DBSession) -> Response:
    """« Enregistrer la politique »: every key of the form; an empty one is inherited."""
    try:
        principal = await access.admin(request, session, OPERATOR)
        form = await request.form()
        policy: dict[str, Any] = {}
        for name in LISTS:
            chosen = [str(v) for v in form.getlist(name)]
            policy[name] = chosen if form.get(f"fixer_{name}") else None
        for name in TEXTS:
            policy[name] = str(form.get(name) or "").strip() or None
        for name in NUMBERS:
            text = "".join(str(form.get(name) or "").split())
            policy[name] = int(text) if text.isdigit() else (text or None)
        for name in OFFICERS:
            parts = ("name", "title")
            person = {part: str(form.get(f"{name}.{part}") or "").strip() for part in parts}
            policy[name] = person if any(person.values()) else None
        return await _update(request, session, principal, organization_id, {"policy": policy})
    except (PlumeError, access.SignInFirst) as error:
        return access.refusal_page(request, error)


@router.post("/organisations/{organization_id}/quotas")
async def set_quotas(organization_id: uuid.UUID, request: Request, session: DBSession) -> Response:
    """« Enregistrer les quotas »: PUT /v1/admin/organizations/{id}/quotas (the list
    replaces the previous one; an empty field is no quota)."""
    try:
        principal = await access.admin(request, session, OPERATOR)
        form = await access.posted(request)
        pairs = [(metric, period) for metric in METRICS for period in PERIODS]
        typed = access.typed_quotas(form, pairs)
        organization = await OrganizationService(session, principal.scope).get(organization_id)
        service = QuotaService(session, request.app.state.clock)
        try:
            items = access.quota_items(pairs, typed)
            await service.replace(organization.id, items)
        except PlumeError as error:
            await session.rollback()
            return await _organisation_page(
                request, session, principal, organization_id, Problems.of(error), typed
            )
        await access.audit_of(request, session, principal).record(
            organization.id,
            "quota.update",
            target=("organization", str(organization.id)),
            details={"quotas": [item.model_dump(mode="json") for item in items]},
        )
    except (PlumeError, access.SignInFirst) as error:
        return access.refusal_page(request, error)
    return access.see(f"{BASE}/organisations/{organization_id}")


# -- the default quotas ----------------------------------------------------------------------


def _default_field(kind: str, metric: str, period: str) -> str:
    return f"defaut_{kind}_{metric}_{period}"


async def _defaults_page(
    request: Request,
    session: AsyncSession,
    principal: Principal,
    typed: dict[str, str] | None = None,
    problems: Problems | None = None,
    saved: bool = False,
) -> Response:
    defaults = await DefaultQuotaService(session).read()
    values = {
        _default_field(d.kind, d.metric, d.period): amount(d.limit, d.metric) for d in defaults
    }
    problems = problems or Problems()
    return access.page(
        request,
        "operateur/quotas_defaut.html",
        {
            **_context(principal, "defauts"),
            "kinds": DEFAULT_QUOTA_KINDS,
            "defaults": defaults,
            "values": typed if typed is not None else values,
            "problems": problems,
            "saved": saved,
        },
        problems.status,
    )


@router.get("/quotas-par-defaut")
async def default_quotas(
    request: Request, session: DBSession, enregistre: str | None = None
) -> Response:
    try:
        principal = await access.admin(request, session, OPERATOR)
        return await _defaults_page(request, session, principal, saved=bool(enregistre))
    except (PlumeError, access.SignInFirst) as error:
        return access.refusal_page(request, error)


@router.post("/quotas-par-defaut")
async def set_default_quotas(request: Request, session: DBSession) -> Response:
    """« Enregistrer les quotas par défaut »: PUT /v1/admin/default-quotas (the list replaces
    every default; an empty field is none). Existing organisations keep their quotas."""
    try:
        principal = await access.admin(request, session, OPERATOR)
        form = await access.posted(request)
        keys = [(k, m, p) for k in DEFAULT_QUOTA_KINDS for m in METRICS for p in PERIODS]
        typed = {_default_field(*key): form.get(_default_field(*key), "") for key in keys}
        try:
            items = [
                access.typed_quota(DefaultQuotaIn, name, text, kind=k, metric=m, period=p)
                for (k, m, p), (name, text) in zip(keys, typed.items(), strict=True)
                if text.strip()
            ]
            await DefaultQuotaService(session).replace(items)
        except PlumeError as error:
            await session.rollback()
            return await _defaults_page(request, session, principal, typed, Problems.of(error))
        await access.audit_of(request, session, principal).record(
            principal.organization_id,
            "quota.defaults_updated",
            target=("default_quotas", "all"),
            details={"default_quotas": [item.model_dump(mode="json") for item in items]},
        )
    except (PlumeError, access.SignInFirst) as error:
        return access.refusal_page(request, error)
    return access.see(f"{BASE}/quotas-par-defaut?enregistre=1")


# -- across tenants --------------------------------------------------------------------------


@router.get("/consommation")
async def usage(
    request: Request,
    session: DBSession,
    mesure: str = "requests",
    du: str | None = None,
    au: str | None = None,
) -> Response:
    """Usage of every tenant (by organisation, with the sums; by month and kind with
    charts), and each organisation's quotas of the month with their use."""
    try:
        principal = await access.admin(request, session, OPERATOR)
    except (PlumeError, access.SignInFirst) as error:
        return access.refusal_page(request, error)
    measure = mesure if mesure in charts.MEASURES else "requests"
    try:
        first, last = report_dates(request, du, au)
        problems = Problems()
    except PlumeError as error:
        problems = Problems.of(error)
        first, last = report_dates(request, None, None)
    by_organisation = await usage_report(session, None, first, last, "organization")
    by_month = await usage_report(session, None, first, last, "month")
    by_kind = await usage_report(session, None, first, last, "kind")
    organisations = await OrganizationService(session, principal.scope).list_all()
    quotas = await QuotaService(session, request.app.state.clock).status(
        [o.id for o in organisations]
    )
    context = _context(principal, "consommation")
    return access.page(
        request,
        "operateur/consommation.html",
        {
            **usage_context(context, by_month, by_kind, measure, problems, first, last),
            "by_organisation": by_organisation,
            "slugs": {o.slug: o for o in organisations},
            "names": {o.id: o.name for o in organisations},
            "quotas": [q for q in quotas if q.period == "month"],
        },
        problems.status if problems else 200,
    )


@router.get("/consommation.csv")
async def usage_csv(
    request: Request,
    session: DBSession,
    regroupement: str = "organization",
    du: str | None = None,
    au: str | None = None,
) -> Response:
    """GET /v1/admin/usage?format=csv: by organisation, month or kind."""
    try:
        await access.admin(request, session, OPERATOR)
        first, last = report_dates(request, du, au)
    except (PlumeError, access.SignInFirst) as error:
        return access.refusal_page(request, error)
    groups: dict[str, GroupBy] = {"month": "month", "kind": "kind"}
    group_by = groups.get(regroupement, "organization")
    return csv_answer(await usage_report(session, None, first, last, group_by))
