"""/app/administration's quotas, usage and audit trail: what GET/PUT /v1/quotas (an EPCI
splitting its allowance among its communes), GET /v1/usage (by month and by kind, CSV) and
GET /v1/audit with /v1/audit/verify answer, as pages, through the same services."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from plume.audit import service as audit_service
from plume.credentials.auth import Principal
from plume.dates import date_range, utc_bounds
from plume.errors import Forbidden, NotFound, PlumeError, invalid_field
from plume.models import Organization
from plume.organizations.service import OrganizationService
from plume.quotas.schemas import QuotaOut
from plume.quotas.service import QuotaService
from plume.usage.reports import as_csv, usage_report
from plume.usage.schemas import GroupBy, UsageReport
from plume.web.pagination import encode_cursor, page_request
from plume.web.transaction import DBSession
from plume.workspace import access, charts
from plume.workspace.access import Problems
from plume.workspace.admin import ADMIN, BASE, admin_context

router = APIRouter(prefix="/app/administration", include_in_schema=False)

METRIC_LABELS = {"requests": "Requêtes", "tokens": "Jetons", "cost_eur": "Coût (€)"}
PERIOD_LABELS = {"minute": "par minute", "day": "par jour", "month": "par mois"}
AUDIT_PAGE = 50


# -- quotas ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Share:
    """One of the EPCI's quotas and what its communes were given of it."""

    metric: str
    period: str
    limit: Decimal
    allotted: Decimal

    @property
    def field(self) -> str:
        return f"limite_{self.metric}_{self.period}"

    @property
    def left(self) -> Decimal:
        return max(Decimal(0), self.limit - self.allotted)


async def _quotas_page(
    request: Request,
    session: AsyncSession,
    organisation: str | None,
    typed: dict[str, dict[str, str]] | None = None,
    problems: Problems | None = None,
    commune_at_fault: uuid.UUID | None = None,
    saved: str | None = None,
) -> Response:
    principal, target, context = await admin_context(request, session, organisation, "quotas")
    service = QuotaService(session, request.app.state.clock)
    chain = [level.id for level in principal.chain]
    if target.id != principal.organization_id:
        chain.append(target.id)
    # Its own quotas first, then its EPCI's, then the operator's (as GET /v1/quotas).
    in_force = await service.status(list(reversed(chain)))
    shares: list[Share] = []
    split: list[dict[str, Any]] = []
    if principal.organization.kind == "epci":
        shares, split = await _split(service, principal, context["communes"])
    problems = problems or Problems()
    return access.page(
        request,
        "admin/quotas.html",
        {
            **context,
            "in_force": in_force,
            "names": {level.id: level.name for level in principal.chain} | {target.id: target.name},
            "shares": shares,
            "split": split,
            "typed": typed or {},
            "problems": problems,
            "commune_at_fault": commune_at_fault,
            "saved": next((c.name for c in context["communes"] if str(c.id) == saved), None),
            "metric_labels": METRIC_LABELS,
            "period_labels": PERIOD_LABELS,
        },
        problems.status,
    )


async def _split(
    service: QuotaService, principal: Principal, communes: list[Organization]
) -> tuple[list[Share], list[dict[str, Any]]]:
    """The EPCI's quotas with what is given to its communes, and each commune's quotas."""
    own = [q for q in await service.status([principal.organization_id])]
    given = await service.status([c.id for c in communes]) if communes else []
    by_commune: dict[uuid.UUID, dict[tuple[str, str], QuotaOut]] = {}
    for quota in given:
        by_commune.setdefault(quota.organization_id, {})[(quota.metric, quota.period)] = quota
    shares = [
        Share(
            q.metric,
            q.period,
            q.limit,
            sum(
                (
                    c[(q.metric, q.period)].limit
                    for c in by_commune.values()
                    if (q.metric, q.period) in c
                ),
                Decimal(0),
            ),
        )
        for q in own
    ]
    split = [
        {
            "commune": commune,
            "limits": {pair: quota.limit for pair, quota in by_commune.get(commune.id, {}).items()},
        }
        for commune in communes
    ]
    return shares, split


@router.get("/quotas")
async def quotas(
    request: Request,
    session: DBSession,
    organisation: str | None = None,
    enregistre: str | None = None,
) -> Response:
    try:
        return await _quotas_page(request, session, organisation, saved=enregistre)
    except (PlumeError, access.SignInFirst) as error:
        return access.refusal_page(request, error)


@router.post("/quotas/{organization_id}")
async def split_quotas(
    organization_id: uuid.UUID, request: Request, session: DBSession
) -> Response:
    """« Enregistrer » a commune's quotas: PUT /v1/quotas?organization_id=…, the EPCI's
    check (no more than it has) and the database's. An empty field removes that quota."""
    try:
        principal = await access.admin(request, session, ADMIN)
        form = await access.posted(request)
        if principal.organization.kind != "epci":
            raise Forbidden(
                "Seul l'administrateur d'un EPCI peut répartir son allocation entre ses "
                "communes ; les autres quotas sont fixés par l'opérateur."
            )
        commune = await OrganizationService(session, principal.scope).find(organization_id)
        if commune is None or commune.parent_id != principal.organization_id:
            raise NotFound("Aucune commune de votre EPCI ne porte cet identifiant.")
        service = QuotaService(session, request.app.state.clock)
        pairs: list[tuple[str, str]] = [
            (q.metric, q.period) for q in await service.status([principal.organization_id])
        ]
        typed = access.typed_quotas(form, pairs)
        try:
            items = access.quota_items(pairs, typed)
            epci = await OrganizationService(session, principal.scope).get(
                principal.organization_id
            )
            splittable = await service.check_split(epci, commune.id, items)
            await service.replace(commune.id, items, within=splittable)
        except PlumeError as error:
            await session.rollback()  # expires `commune`: its id was read before
            problems = _problems_on_fields(error, pairs, typed)
            return await _quotas_page(
                request, session, None, {str(organization_id): typed}, problems, organization_id
            )
        await access.audit_of(request, session, principal).record(
            commune.id,
            "quota.update",
            target=("organization", str(commune.id)),
            details={"quotas": [item.model_dump(mode="json") for item in items]},
        )
    except (PlumeError, access.SignInFirst) as error:
        return access.refusal_page(request, error)
    return access.see(f"{BASE}/quotas?enregistre={commune.id}")


def _problems_on_fields(
    error: PlumeError, pairs: list[tuple[str, str]], typed: dict[str, str]
) -> Problems:
    """The service names `[i].limit` (the i-th quota sent): the page names the input."""
    sent = [f"limite_{m}_{p}" for m, p in pairs if typed[f"limite_{m}_{p}"].strip()]
    fields = {}
    for problem in error.errors or []:
        name = problem.field
        if name.startswith("[") and "]" in name:
            index = int(name[1 : name.index("]")])
            name = sent[index] if index < len(sent) else name
        fields[name] = problem.message
    return Problems(Problems.of(error).summary, fields, error.status)


# -- usage -----------------------------------------------------------------------------------


def _day(value: str | None, name: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise invalid_field(name, "indiquez une date au format AAAA-MM-JJ") from None


def paris_dates(request: Request, start: str | None, end: str | None) -> tuple[date, date]:
    """The reports' dates (as `from` and `to` of the API), named as the form names them."""
    first_day, last_day = _day(start, "du"), _day(end, "au")
    try:
        return date_range(first_day, last_day, request.app.state.clock.now())
    except PlumeError as error:
        fault = error.errors[0] if error.errors else None
        if fault is None:
            raise
        raise invalid_field(
            {"from": "du", "to": "au"}.get(fault.field, fault.field), fault.message
        ) from None


def report_dates(request: Request, start: str | None, end: str | None) -> tuple[date, date]:
    """The period asked for; by default the twelve months up to today (the chart by month)."""
    first, last = paris_dates(request, start, end)
    first_day = _day(start, "du")
    if first_day is None:
        year, month = (
            (last.year, last.month - 11) if last.month > 11 else (last.year - 1, last.month + 1)
        )
        first = date(year, month, 1)
    return first, last


def _usage_organisations(principal: Principal, target: Organization) -> list[uuid.UUID]:
    """As GET /v1/usage: an EPCI's report covers its communes unless one is picked."""
    if target.id != principal.organization_id:
        return [target.id]
    if principal.scope.all_organizations:
        return [principal.organization_id]
    return sorted(principal.scope.organization_ids)


@router.get("/consommation")
async def usage(
    request: Request,
    session: DBSession,
    organisation: str | None = None,
    mesure: str = "requests",
    du: str | None = None,
    au: str | None = None,
) -> Response:
    try:
        principal, target, context = await admin_context(
            request, session, organisation, "consommation"
        )
    except (PlumeError, access.SignInFirst) as error:
        return access.refusal_page(request, error)
    measure = mesure if mesure in charts.MEASURES else "requests"
    try:
        first, last = report_dates(request, du, au)
    except PlumeError as error:
        problems = Problems.of(error)
        first, last = report_dates(request, None, None)
    else:
        problems = Problems()
    ids = _usage_organisations(principal, target)
    by_month = await usage_report(session, ids, first, last, "month")
    by_kind = await usage_report(session, ids, first, last, "kind")
    return access.page(
        request,
        "admin/consommation.html",
        usage_context(context, by_month, by_kind, measure, problems, first, last),
        problems.status if problems else 200,
    )


def usage_context(
    context: dict[str, Any],
    by_month: UsageReport,
    by_kind: UsageReport,
    measure: str,
    problems: Problems,
    first: date,
    last: date,
) -> dict[str, Any]:
    """What the usage pages show (the tenant admin's and the operator's)."""
    label = charts.MEASURES[measure][0]
    return {
        **context,
        "by_month": by_month,
        "by_kind": by_kind,
        "measure": measure,
        "measures": charts.MEASURES,
        "month_chart": charts.bar_chart(
            f"{label} par mois", charts.every_month(by_month.rows, first, last), "month", measure
        ),
        "kind_chart": charts.bar_chart(
            f"{label} par type de document", by_kind.rows, "kind", measure
        ),
        "row_label": charts.row_label,
        "figure": charts.figure,
        "problems": problems,
        "first": first,
        "last": last,
    }


@router.get("/consommation.csv")
async def usage_csv(
    request: Request,
    session: DBSession,
    organisation: str | None = None,
    regroupement: str = "month",
    du: str | None = None,
    au: str | None = None,
) -> Response:
    """The report as GET /v1/usage?format=csv gives it (by month, or by kind)."""
    try:
        principal, target, _ = await admin_context(request, session, organisation, "consommation")
        first, last = report_dates(request, du, au)
    except (PlumeError, access.SignInFirst) as error:
        return access.refusal_page(request, error)
    group_by: GroupBy = "kind" if regroupement == "kind" else "month"
    report = await usage_report(
        session, _usage_organisations(principal, target), first, last, group_by
    )
    return csv_answer(report)


def csv_answer(report: UsageReport) -> Response:
    name = f"usage-{report.from_.isoformat()}-{report.to.isoformat()}.csv"
    return Response(
        as_csv(report),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "no-store",
        },
    )


# -- audit trail -----------------------------------------------------------------------------


@router.get("/journal")
async def audit_trail(
    request: Request,
    session: DBSession,
    organisation: str | None = None,
    action: str | None = None,
    du: str | None = None,
    au: str | None = None,
    suite: str | None = None,
    verifier: str | None = None,
) -> Response:
    """The chain, newest first, filtered (action, dates) and paged (« Entrées plus
    anciennes »); « Vérifier la chaîne » adds GET /v1/audit/verify's answer."""
    try:
        principal, target, context = await admin_context(request, session, organisation, "journal")
    except (PlumeError, access.SignInFirst) as error:
        return access.refusal_page(request, error)
    action = (action or "").strip()[:40] or None
    problems = Problems()
    entries: list[Any] = []
    cursor = None
    try:
        first, last = paris_dates(request, du, au)
        if not du:
            first = date(2000, 1, 1)
        page = page_request(AUDIT_PAGE, suite)
        lower, upper = utc_bounds(first, last)
        rows = await audit_service.list_page(
            session, target.id, page, start=lower, end=upper, action=action, actor=None
        )
        if len(rows) > AUDIT_PAGE:
            rows = rows[:AUDIT_PAGE]
            cursor = encode_cursor(*audit_service.cursor_key(rows[-1]))
        addresses = await audit_service.client_addresses(session, target.id, [e.seq for e in rows])
        entries = [audit_service.entry_out(e, addresses.get(e.seq)) for e in rows]
    except PlumeError as error:
        problems = Problems.of(error)
    verification = None
    if verifier:
        verification = await audit_service.verify(session, target.id, principal.scope)
    return access.page(
        request,
        "admin/journal.html",
        {
            **context,
            "entries": entries,
            "cursor": cursor,
            "filters": {"action": action or "", "du": du or "", "au": au or ""},
            "problems": problems,
            "verification": verification,
        },
        problems.status if problems else 200,
    )
