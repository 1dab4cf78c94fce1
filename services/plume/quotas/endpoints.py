"""HTTP routes for quotas: a tenant's view, the operator's settings, an EPCI's split."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Body, Query, Request

from plume.audit.trail import Audit, AuditTrail
from plume.credentials.auth import AnyKey, OperatorAdmin, Principal, TenantAdmin
from plume.errors import Forbidden, NotFound, invalid_field
from plume.models import Organization
from plume.organizations.service import OrganizationService
from plume.quotas.defaults import DefaultQuotaService
from plume.quotas.schemas import DefaultQuotaIn, DefaultQuotaList, QuotaIn, QuotaList
from plume.quotas.service import QuotaService
from plume.web.openapi import raises
from plume.web.transaction import DBSession

tenant_router = APIRouter(prefix="/v1/quotas", tags=["tenant"])
admin_router = APIRouter(prefix="/v1/admin/organizations", tags=["operator"])
defaults_router = APIRouter(prefix="/v1/admin/default-quotas", tags=["operator"])

QuotaItems = Annotated[
    list[QuotaIn],
    Body(description="The organisation's quotas; the list replaces the previous one"),
]

DefaultQuotaItems = Annotated[
    list[DefaultQuotaIn],
    Body(description="The default quotas of every kind; the list replaces the previous one"),
]


def _service(request: Request, session: DBSession, principal: Principal) -> QuotaService:
    return QuotaService(session, request.app.state.clock)


async def _commune_of(
    session: DBSession, principal: Principal, organization_id: uuid.UUID
) -> Organization:
    """One of the caller's communes (an EPCI admin's scope); anyone else's is 404."""
    organization = await OrganizationService(session, principal.scope).find(organization_id)
    if organization is None or organization.parent_id != principal.organization_id:
        raise NotFound("Aucune commune de votre EPCI ne porte cet identifiant.")
    return organization


@tenant_router.get(
    "",
    summary="Your quotas and your ancestors', with use and reset time",
    responses=raises(NotFound),
)
async def read_quotas(
    request: Request,
    session: DBSession,
    principal: AnyKey,
    organization_id: Annotated[
        uuid.UUID | None, Query(description="An EPCI admin: one of its communes")
    ] = None,
) -> QuotaList:
    chain = [level.id for level in principal.chain]
    if organization_id is not None and organization_id != principal.organization_id:
        commune = await _commune_of(session, principal, organization_id)
        chain.append(commune.id)
    # The commune's own quotas first, then its EPCI's, then the operator's.
    items = await _service(request, session, principal).status(list(reversed(chain)))
    return QuotaList(items=items)


@tenant_router.put(
    "",
    summary="An EPCI admin splits its allowance between its communes",
    responses=raises(Forbidden, NotFound),
)
async def split_quotas(
    items: QuotaItems,
    request: Request,
    session: DBSession,
    principal: TenantAdmin,
    audit: Audit,
    organization_id: Annotated[
        uuid.UUID | None, Query(description="The commune whose quotas are set")
    ] = None,
) -> QuotaList:
    if principal.organization.kind != "epci":
        raise Forbidden(
            "Seul l'administrateur d'un EPCI peut répartir son allocation entre ses communes ; "
            "les autres quotas sont fixés par l'opérateur."
        )
    if organization_id is None:
        raise invalid_field("organization_id", "indiquez la commune dont vous fixez les quotas")
    commune = await _commune_of(session, principal, organization_id)
    epci = await OrganizationService(session, principal.scope).find(principal.organization_id)
    assert epci is not None
    service = _service(request, session, principal)
    splittable = await service.check_split(epci, commune.id, items)
    await service.replace(commune.id, items, within=splittable)
    await _audit_update(audit, commune.id, items)
    return QuotaList(items=await service.status([commune.id]))


@admin_router.get("/{organization_id}/quotas", summary="An organisation's quotas, with use")
async def admin_read_quotas(
    organization_id: uuid.UUID, request: Request, session: DBSession, principal: OperatorAdmin
) -> QuotaList:
    await _existing(session, principal, organization_id)
    items = await _service(request, session, principal).status([organization_id])
    return QuotaList(items=items)


@admin_router.put("/{organization_id}/quotas", summary="Set an organisation's quotas")
async def admin_set_quotas(
    organization_id: uuid.UUID,
    items: QuotaItems,
    request: Request,
    session: DBSession,
    principal: OperatorAdmin,
    audit: Audit,
) -> QuotaList:
    await _existing(session, principal, organization_id)
    service = _service(request, session, principal)
    await service.replace(organization_id, items)
    await _audit_update(audit, organization_id, items)
    return QuotaList(items=await service.status([organization_id]))


async def _audit_update(
    audit: AuditTrail, organization_id: uuid.UUID, items: list[QuotaIn]
) -> None:
    await audit.record(
        organization_id,
        "quota.update",
        target=("organization", str(organization_id)),
        details={"quotas": [item.model_dump(mode="json") for item in items]},
    )


async def _existing(
    session: DBSession, principal: Principal, organization_id: uuid.UUID
) -> Organization:
    organization = await OrganizationService(session, principal.scope).find(organization_id)
    if organization is None:
        raise NotFound("Aucune organisation ne porte cet identifiant.")
    return organization


@defaults_router.get("", summary="The quotas each new EPCI or commune is given when created")
async def read_default_quotas(session: DBSession, principal: OperatorAdmin) -> DefaultQuotaList:
    return DefaultQuotaList(items=await DefaultQuotaService(session).read())


@defaults_router.put(
    "", summary="Set the quotas each new EPCI or commune is given (existing ones keep theirs)"
)
async def set_default_quotas(
    items: DefaultQuotaItems, session: DBSession, principal: OperatorAdmin, audit: Audit
) -> DefaultQuotaList:
    service = DefaultQuotaService(session)
    await service.replace(items)
    await audit.record(
        principal.organization_id,
        "quota.defaults_updated",
        target=("default_quotas", "all"),
        details={"default_quotas": [item.model_dump(mode="json") for item in items]},
    )
    return DefaultQuotaList(items=await service.read())
