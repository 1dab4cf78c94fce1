"""HTTP routes for API keys: the operator's for every tenant, a tenant admin's for its own;"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status

from plume.audit.trail import Audit, AuditTrail
from plume.credentials.auth import OperatorAdmin, Principal, TenantAdmin
from plume.credentials.minting import mint_recorded, revoke_recorded
from plume.credentials.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyOut
from plume.credentials.secrets import KeyHasher
from plume.credentials.service import ApiKeyService, key_out
from plume.errors import NotFound
from plume.models import Organization
from plume.organizations.service import OrganizationService
from plume.web.openapi import raises
from plume.web.pagination import Page, PageParams, next_cursor
from plume.web.transaction import DBSession

admin_router = APIRouter(prefix="/v1/admin", tags=["operator"])
tenant_router = APIRouter(prefix="/v1/organization/api-keys", tags=["tenant"])

OrganizationParam = Annotated[
    uuid.UUID | None,
    Query(description="An EPCI admin may name one of its communes; default: its own"),
]


def _service(request: Request, session: DBSession, principal: Principal) -> ApiKeyService:
    settings = request.app.state.settings
    hasher = KeyHasher.from_secret(settings.require_secret_key())
    max_days = settings.api_key_max_days
    lifetime = timedelta(days=max_days) if max_days is not None else None
    return ApiKeyService(session, principal.scope, hasher, max_lifetime=lifetime)


async def _list(
    service: ApiKeyService, organization_id: uuid.UUID, page: PageParams, principal: Principal
) -> Page[ApiKeyOut]:
    # The keys the caller manages: none above its own role.
    keys = await service.list_page(organization_id, page, caller_role=principal.role)
    rows, cursor = next_cursor(list(keys), page, lambda k: (k.created_at, k.id))
    return Page(items=[key_out(k) for k in rows], next_cursor=cursor)


async def _mint(
    service: ApiKeyService,
    organization: Organization,
    payload: ApiKeyCreate,
    principal: Principal,
    response: Response,
    audit: AuditTrail,
) -> ApiKeyCreated:
    response.headers["Cache-Control"] = "no-store"
    return await mint_recorded(service, organization, payload, caller=principal, audit=audit)


async def _revoke(
    service: ApiKeyService, key_id: uuid.UUID, principal: Principal, audit: AuditTrail
) -> None:
    await revoke_recorded(service, key_id, caller=principal, audit=audit)


@admin_router.get("/organizations/{organization_id}/api-keys", summary="List a tenant's keys")
async def admin_list_keys(
    organization_id: uuid.UUID,
    request: Request,
    session: DBSession,
    principal: OperatorAdmin,
    page: PageParams,
) -> Page[ApiKeyOut]:
    organization = await OrganizationService(session, principal.scope).get(organization_id)
    return await _list(_service(request, session, principal), organization.id, page, principal)


@admin_router.post(
    "/organizations/{organization_id}/api-keys",
    status_code=status.HTTP_201_CREATED,
    summary="Mint a key for a tenant; the secret is shown once",
)
async def admin_create_key(
    organization_id: uuid.UUID,
    payload: ApiKeyCreate,
    request: Request,
    response: Response,
    session: DBSession,
    principal: OperatorAdmin,
    audit: Audit,
) -> ApiKeyCreated:
    organization = await OrganizationService(session, principal.scope).get(organization_id)
    service = _service(request, session, principal)
    return await _mint(service, organization, payload, principal, response, audit)


@admin_router.delete(
    "/api-keys/{api_key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke a key, at once in every process",
)
async def admin_revoke_key(
    api_key_id: uuid.UUID,
    request: Request,
    session: DBSession,
    principal: OperatorAdmin,
    audit: Audit,
) -> None:
    await _revoke(_service(request, session, principal), api_key_id, principal, audit)


@tenant_router.get(
    "",
    summary="List the keys of your organisation (or of one of your communes)",
    responses=raises(NotFound),
)
async def list_keys(
    request: Request,
    session: DBSession,
    principal: TenantAdmin,
    page: PageParams,
    organization_id: OrganizationParam = None,
) -> Page[ApiKeyOut]:
    organization = await OrganizationService(session, principal.scope).managed(
        principal.organization_id, organization_id
    )
    return await _list(_service(request, session, principal), organization.id, page, principal)


@tenant_router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Mint a key for your organisation (or one of your communes); shown once",
    responses=raises(NotFound),
)
async def create_key(
    payload: ApiKeyCreate,
    request: Request,
    response: Response,
    session: DBSession,
    principal: TenantAdmin,
    audit: Audit,
    organization_id: OrganizationParam = None,
) -> ApiKeyCreated:
    organization = await OrganizationService(session, principal.scope).managed(
        principal.organization_id, organization_id
    )
    service = _service(request, session, principal)
    return await _mint(service, organization, payload, principal, response, audit)


@tenant_router.delete(
    "/{api_key_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Revoke one of your keys"
)
async def revoke_key(
    api_key_id: uuid.UUID,
    request: Request,
    session: DBSession,
    principal: TenantAdmin,
    audit: Audit,
) -> None:
    await _revoke(_service(request, session, principal), api_key_id, principal, audit)
