"""Decisions about API keys: minting, listing, revoking, and who may do it for whom."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from plume.credentials.repository import ApiKeyRepository
from plume.credentials.schemas import ApiKeyCreated, ApiKeyOut
from plume.credentials.secrets import KeyHasher, display_prefix, generate_key
from plume.db import TenantScope
from plume.errors import NotFound, invalid_field
from plume.models import ApiKey, ApiKeyRole, Organization, OrganizationKind
from plume.web.pagination import PageRequest


def key_status(key: ApiKey, now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    if key.revoked_at is not None:
        return "revoked"
    if key.expires_at is not None and key.expires_at <= now:
        return "expired"
    return "active"


def key_out(key: ApiKey) -> ApiKeyOut:
    return ApiKeyOut(
        id=key.id,
        organization_id=key.organization_id,
        name=key.name,
        role=key.role.value,
        prefix=key.prefix,
        status=key_status(key),
        created_at=key.created_at,
        expires_at=key.expires_at,
        revoked_at=key.revoked_at,
        last_used_at=key.last_used_at,
        created_by=key.created_by_key_id,
    )


class ApiKeyService:
    def __init__(self, session: AsyncSession, scope: TenantScope, hasher: KeyHasher) -> None:
        self.repository = ApiKeyRepository(session, scope)
        self.hasher = hasher

    async def mint(
        self,
        organization: Organization,
        *,
        name: str,
        role: ApiKeyRole,
        expires_at: datetime | None = None,
        created_by: uuid.UUID | None = None,
    ) -> ApiKeyCreated:
        if role is ApiKeyRole.OPERATOR_ADMIN and organization.kind is not OrganizationKind.OPERATOR:
            raise invalid_field("role", "Seule l'organisation opérateur a des clés operator_admin.")
        if expires_at is not None and expires_at <= datetime.now(UTC):
            raise invalid_field("expires_at", "La date d'expiration doit être dans le futur.")
        secret = generate_key()
        key = await self.repository.add(
            ApiKey(
                organization_id=organization.id,
                name=name,
                role=role,
                prefix=display_prefix(secret),
                secret_hash=self.hasher.hash(secret),
                secret_version=self.hasher.version,
                expires_at=expires_at,
                created_by_key_id=created_by,
            )
        )
        return ApiKeyCreated(**key_out(key).model_dump(), key=secret)

    async def list_page(self, organization_id: uuid.UUID, page: PageRequest) -> Sequence[ApiKey]:
        return await self.repository.list_page(organization_id, page)

    async def revoke(self, key_id: uuid.UUID) -> ApiKey:
        key = await self.repository.get(key_id)
        if key is None:
            raise NotFound("Aucune clé d'API ne porte cet identifiant.")
        return await self.repository.revoke(key)

    async def revoke_named(self, organization_id: uuid.UUID, name_prefix: str) -> int:
        return await self.repository.revoke_named(organization_id, name_prefix)
