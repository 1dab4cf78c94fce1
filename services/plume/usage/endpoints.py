"""HTTP routes for usage reports: a tenant admin's (an EPCI's covers its communes) and the
operator's, for every tenant."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response

from plume.credentials.auth import OperatorAdmin, TenantAdmin
from plume.dates import REPORT_DAY_PATTERN, date_range
from plume.errors import NotFound
from plume.usage.reports import as_csv, usage_report
from plume.usage.schemas import GroupBy, UsageReport
from plume.web.openapi import download, merge, raises
from plume.web.transaction import DBSession

tenant_router = APIRouter(prefix="/v1/usage", tags=["tenant"])
admin_router = APIRouter(prefix="/v1/admin/usage", tags=["operator"])

From = Annotated[
    date | None,
    Query(
        alias="from",
        description="First day (Paris), inclusive; 2000-01-01 to 2100-12-31",
        json_schema_extra={"pattern": REPORT_DAY_PATTERN},
    ),
]
To = Annotated[
    date | None,
    Query(
        alias="to",
        description="Last day (Paris), inclusive; default today; not before `from`",
        json_schema_extra={"pattern": REPORT_DAY_PATTERN},
    ),
]
Format = Annotated[Literal["json", "csv"], Query()]
CSV = download("With `format=csv`: the rows, then a total line, as an attachment", "text/csv")


def _dates(request: Request, start: date | None, end: date | None) -> tuple[date, date]:
    return date_range(start, end, request.app.state.clock.now())


def _answer(report: UsageReport, format: str) -> Response:
    if format == "csv":
        name = f"usage-{report.from_.isoformat()}-{report.to.isoformat()}.csv"
        return Response(
            as_csv(report),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
    return Response(report.model_dump_json(by_alias=True), media_type="application/json")


@tenant_router.get(
    "",
    summary="Your organisation's usage (an EPCI's: with its communes, each and in total)",
    response_model=UsageReport,
    responses=merge(CSV, raises(NotFound)),
)
async def tenant_usage(
    request: Request,
    session: DBSession,
    principal: TenantAdmin,
    start: From = None,
    end: To = None,
    group_by: Annotated[GroupBy, Query()] = "day",
    format: Format = "json",
    organization_id: Annotated[
        uuid.UUID | None, Query(description="An EPCI admin: one of its communes only")
    ] = None,
) -> Response:
    first, last = _dates(request, start, end)
    if organization_id is not None:
        if not principal.scope.includes(organization_id):
            raise NotFound("Aucune organisation ne porte cet identifiant.")
        organizations = [organization_id]
    elif principal.scope.all_organizations:
        organizations = [principal.organization_id]
    else:
        organizations = sorted(principal.scope.organization_ids)
    report = await usage_report(session, organizations, first, last, group_by)
    return _answer(report, format)


@admin_router.get("", summary="Usage of every tenant", response_model=UsageReport, responses=CSV)
async def admin_usage(
    request: Request,
    session: DBSession,
    principal: OperatorAdmin,
    start: From = None,
    end: To = None,
    group_by: Annotated[GroupBy, Query()] = "organization",
    format: Format = "json",
) -> Response:
    first, last = _dates(request, start, end)
    report = await usage_report(session, None, first, last, group_by)
    return _answer(report, format)
