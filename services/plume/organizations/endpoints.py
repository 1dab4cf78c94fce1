"""HTTP routes for organisations: the operator's admin routes and a tenant's own view."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, BackgroundTasks, Request, status

from plume.audit.trail import Audit
from plume.credentials.auth import AnyKey, OperatorAdmin
from plume.errors import Conflict
from plume.organizations.schemas import (
    AdminOrganizationOut,
    OrganizationCreate,
    OrganizationOut,
    OrganizationUpdate,
)
from plume.organizations.service import OrganizationService
from plume.quotas.defaults import DefaultQuotaService, given_details
from plume.routing.router import ProviderRouter
from plume.usage.processing import ProcessingRecord, processing_record
from plume.web.openapi import raises
from plume.web.pagination import Page, PageParams, next_cursor
from plume.web.transaction import DBSession

admin_router = APIRouter(prefix="/v1/admin/organizations", tags=["operator"])
tenant_router = APIRouter(prefix="/v1/organization", tags=["tenant"])


def _show_in_metrics(request: Request, tasks: BackgroundTasks) -> None:
    """plume_organization_info, read again once the change is committed (after the answer)."""
    info = getattr(request.app.state, "organization_info", None)
    if info is not None:
        tasks.add_task(info.refresh_after_change)


@admin_router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create an EPCI or a commune",
    responses=raises(Conflict),
)
async def create_organization(
    payload: OrganizationCreate,
    session: DBSession,
    principal: OperatorAdmin,
    audit: Audit,
    request: Request,
    tasks: BackgroundTasks,
) -> AdminOrganizationOut:
    service = OrganizationService(session, principal.scope)
    organization = await service.create(payload)
    view = await service.admin_view(organization)
    target = ("organization", str(organization.id))
    await audit.record(organization.id, "organization.create", target, view.created_details())
    # The operator's defaults for its kind, in the same transaction: never retroactive.
    if given := await DefaultQuotaService(session).apply(organization):
        await audit.record(organization.id, "quota.update", target, given_details(given))
    _show_in_metrics(request, tasks)
    return view


@admin_router.get("", summary="List every organisation, newest first")
async def list_organizations(
    session: DBSession, principal: OperatorAdmin, page: PageParams
) -> Page[AdminOrganizationOut]:
    service = OrganizationService(session, principal.scope)
    rows, cursor = next_cursor(
        list(await service.list_page(page)), page, lambda o: (o.created_at, o.id)
    )
    return Page(items=[await service.admin_view(o) for o in rows], next_cursor=cursor)


@admin_router.get("/{organization_id}", summary="Read one organisation")
async def get_organization(
    organization_id: uuid.UUID, session: DBSession, principal: OperatorAdmin
) -> AdminOrganizationOut:
    service = OrganizationService(session, principal.scope)
    return await service.admin_view(await service.get(organization_id))


@admin_router.patch("/{organization_id}", summary="Update name, status or policy")
async def update_organization(
    organization_id: uuid.UUID,
    payload: OrganizationUpdate,
    session: DBSession,
    principal: OperatorAdmin,
    audit: Audit,
    request: Request,
    tasks: BackgroundTasks,
) -> AdminOrganizationOut:
    service = OrganizationService(session, principal.scope)
    organization = await service.update(organization_id, payload)
    await audit.record(
        organization.id,
        "organization.update",
        target=("organization", str(organization.id)),
        details={"changes": payload.model_dump(mode="json", exclude_unset=True)},
    )
    _show_in_metrics(request, tasks)
    return await service.admin_view(organization)


@tenant_router.get("", summary="The organisation this key acts for, with its effective policy")
async def get_own_organization(principal: AnyKey) -> OrganizationOut:
    return principal.organization


@tenant_router.get(
    "/processing",
    summary="The record of processing (RGPD, art. 30) of the caller's organisation",
)
async def get_processing_record(
    request: Request, session: DBSession, principal: AnyKey
) -> ProcessingRecord:
    """Purposes, retention, the handling of personal data, and the providers its requests
    actually reached (from the usage records), with their hosting class."""
    router: ProviderRouter = request.app.state.provider_router
    hosting = {
        deployment.provider_name: deployment.hosting
        for group in router.config.model_groups
        for deployment in group.deployments
    }
    return await processing_record(session, principal, hosting)
