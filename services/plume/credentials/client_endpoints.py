"""HTTP routes for OAuth2 clients, as for API keys (plume.credentials.endpoints): the
operator's for every tenant, a tenant admin's for its own organisation (or, for an EPCI's,
one of its communes)."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request, Response, status

from plume.audit.trail import Audit, AuditTrail
from plume.credentials.auth import OperatorAdmin, Principal, TenantAdmin
from plume.credentials.clients import OAuthClientService, client_out
from plume.credentials.endpoints import OrganizationParam, _target
from plume.credentials.schemas import OAuthClientCreate, OAuthClientCreated, OAuthClientOut
from plume.credentials.secrets import KeyHasher
from plume.errors import NotFound
from plume.models import ApiKeyRole, Organization
from plume.organizations.service import OrganizationService
from plume.web.openapi import raises
from plume.web.pagination import Page, PageParams, next_cursor
from plume.web.transaction import DBSession

admin_router = APIRouter(prefix="/v1/admin", tags=["operator"])
tenant_router = APIRouter(prefix="/v1/organization/oauth-clients", tags=["tenant"])


def client_details(name: str, role: str, client_id: str) -> dict[str, Any]:
    """What the trail says of a client: never its secret."""
    return {"name": name, "role": role, "client_id": client_id}


def _service(request: Request, session: DBSession, principal: Principal) -> OAuthClientService:
    hasher = KeyHasher.from_secret(request.app.state.settings.require_secret_key())
    return OAuthClientService(session, principal.scope, hasher)


async def _list(
    service: OAuthClientService,
    organization_id: uuid.UUID,
    page: PageParams,
    principal: Principal,
) -> Page[OAuthClientOut]:
    # The clients the caller manages: none above its own role.
    clients = await service.list_page(organization_id, page, caller_role=principal.role)
    rows, cursor = next_cursor(list(clients), page, lambda c: (c.created_at, c.id))
    return Page(items=[client_out(c) for c in rows], next_cursor=cursor)


async def _create(
    service: OAuthClientService,
    organization: Organization,
    payload: OAuthClientCreate,
    principal: Principal,
    response: Response,
    audit: AuditTrail,
) -> OAuthClientCreated:
    response.headers["Cache-Control"] = "no-store"
    created = await service.create(
        organization,
        name=payload.name,
        role=ApiKeyRole(payload.role),
        created_by=principal.key_id,
        caller_role=principal.role,
    )
    await audit.record(
        organization.id,
        "oauth_client.create",
        target=("oauth_client", str(created.id)),
        details=client_details(created.name, created.role, created.client_id),
    )
    return created


async def _revoke(
    service: OAuthClientService, client_uuid: uuid.UUID, principal: Principal, audit: AuditTrail
) -> None:
    client = await service.revoke(client_uuid, caller_role=principal.role)
    await audit.record(
        client.organization_id,
        "oauth_client.revoke",
        target=("oauth_client", str(client.id)),
        details=client_details(client.name, client.role.value, client.client_id),
    )


@admin_router.get(
    "/organizations/{organization_id}/oauth-clients", summary="List a tenant's OAuth2 clients"
)
async def admin_list_clients(
    organization_id: uuid.UUID,
    request: Request,
    session: DBSession,
    principal: OperatorAdmin,
    page: PageParams,
) -> Page[OAuthClientOut]:
    organization = await OrganizationService(session, principal.scope).get(organization_id)
    return await _list(_service(request, session, principal), organization.id, page, principal)


@admin_router.post(
    "/organizations/{organization_id}/oauth-clients",
    status_code=status.HTTP_201_CREATED,
    summary="Create an OAuth2 client for a tenant; the secret is shown once",
)
async def admin_create_client(
    organization_id: uuid.UUID,
    payload: OAuthClientCreate,
    request: Request,
    response: Response,
    session: DBSession,
    principal: OperatorAdmin,
    audit: Audit,
) -> OAuthClientCreated:
    organization = await OrganizationService(session, principal.scope).get(organization_id)
    service = _service(request, session, principal)
    return await _create(service, organization, payload, principal, response, audit)


@admin_router.delete(
    "/oauth-clients/{oauth_client_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke an OAuth2 client: its tokens stop working at once, in every process",
)
async def admin_revoke_client(
    oauth_client_id: uuid.UUID,
    request: Request,
    session: DBSession,
    principal: OperatorAdmin,
    audit: Audit,
) -> None:
    await _revoke(_service(request, session, principal), oauth_client_id, principal, audit)


@tenant_router.get(
    "",
    summary="List the OAuth2 clients of your organisation (or of one of your communes)",
    responses=raises(NotFound),
)
async def list_clients(
    request: Request,
    session: DBSession,
    principal: TenantAdmin,
    page: PageParams,
    organization_id: OrganizationParam = None,
) -> Page[OAuthClientOut]:
    organization = await _target(session, principal, organization_id)
    return await _list(_service(request, session, principal), organization.id, page, principal)


@tenant_router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create an OAuth2 client for your organisation (or one of your communes); "
    "the secret is shown once",
    responses=raises(NotFound),
)
async def create_client(
    payload: OAuthClientCreate,
    request: Request,
    response: Response,
    session: DBSession,
    principal: TenantAdmin,
    audit: Audit,
    organization_id: OrganizationParam = None,
) -> OAuthClientCreated:
    organization = await _target(session, principal, organization_id)
    service = _service(request, session, principal)
    return await _create(service, organization, payload, principal, response, audit)


@tenant_router.delete(
    "/{oauth_client_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke one of your OAuth2 clients: its tokens stop working at once",
)
async def revoke_client(
    oauth_client_id: uuid.UUID,
    request: Request,
    session: DBSession,
    principal: TenantAdmin,
    audit: Audit,
) -> None:
    await _revoke(_service(request, session, principal), oauth_client_id, principal, audit)
