"""Creating and revoking an OAuth2 client for a caller, each with its audit entry: the one
way the API and the workspace's administration pages do it (the clients' service itself is
below the audit trail)."""

from __future__ import annotations

import uuid

from plume.audit.trail import AuditTrail, client_details
from plume.credentials.auth import Principal
from plume.models import ApiKeyRole, OAuthClient, Organization
from plume.oauth.schemas import OAuthClientCreate, OAuthClientCreated
from plume.oauth.service import OAuthClientService


async def create_recorded(
    service: OAuthClientService,
    organization: Organization,
    payload: OAuthClientCreate,
    *,
    caller: Principal,
    audit: AuditTrail,
) -> OAuthClientCreated:
    """A client asked for by `caller`, and its `oauth_client.create` audit entry: never the
    secret, its id, name, role and client_id."""
    created = await service.create(
        organization,
        name=payload.name,
        role=ApiKeyRole(payload.role),
        created_by=caller.key_id,
        caller_role=caller.role,
    )
    await audit.record(
        organization.id,
        "oauth_client.create",
        target=("oauth_client", str(created.id)),
        details=client_details(created.name, created.role, created.client_id),
    )
    return created


async def revoke_recorded(
    service: OAuthClientService, client_id: uuid.UUID, *, caller: Principal, audit: AuditTrail
) -> OAuthClient:
    """A client revoked by `caller` (its tokens stop at once), and its
    `oauth_client.revoke` audit entry."""
    client = await service.revoke(client_id, caller_role=caller.role)
    await audit.record(
        client.organization_id,
        "oauth_client.revoke",
        target=("oauth_client", str(client.id)),
        details=client_details(client.name, client.role.value, client.client_id),
    )
    return client
