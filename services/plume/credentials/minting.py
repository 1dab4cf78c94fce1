"""Minting and revoking a key for a caller, each with its audit entry: the one way the API and
the workspace's administration pages do it (the credentials service itself is below the
audit trail)."""

from __future__ import annotations

import uuid

from plume.audit.trail import AuditTrail, key_details
from plume.credentials.auth import Principal
from plume.credentials.schemas import ApiKeyCreate, ApiKeyCreated
from plume.credentials.service import ApiKeyService
from plume.models import ApiKey, ApiKeyRole, Organization


async def mint_recorded(
    service: ApiKeyService,
    organization: Organization,
    payload: ApiKeyCreate,
    *,
    caller: Principal,
    audit: AuditTrail,
) -> ApiKeyCreated:
    """A key asked for by `caller` (through the API or the workspace), and its
    `api_key.create` audit entry: never the secret, its id, prefix, role and name."""
    created = await service.mint(
        organization,
        name=payload.name,
        role=ApiKeyRole(payload.role),
        expires_at=payload.expires_at,
        created_by=caller.key_id,
        caller_role=caller.role,
    )
    await audit.record(
        organization.id,
        "api_key.create",
        target=("api_key", str(created.id)),
        details={
            **key_details(created.name, created.role, created.prefix),
            "expires_at": created.expires_at.isoformat() if created.expires_at else None,
        },
    )
    return created


async def revoke_recorded(
    service: ApiKeyService, key_id: uuid.UUID, *, caller: Principal, audit: AuditTrail
) -> ApiKey:
    """A key revoked by `caller`, and its `api_key.revoke` audit entry."""
    key = await service.revoke(key_id, caller_role=caller.role)
    await audit.record(
        key.organization_id,
        "api_key.revoke",
        target=("api_key", str(key.id)),
        details=key_details(key.name, key.role.value, key.prefix),
    )
    return key
