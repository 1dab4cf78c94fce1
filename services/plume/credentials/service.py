"""Decisions about API keys: minting, listing, revoking, and who may do it for whom."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from plume.credentials.repository import ApiKeyRepository
from plume.credentials.schemas import ApiKeyCreated, ApiKeyOut
from plume.credentials.secrets import KeyHasher, display_prefix, generate_key
from plume.db import TenantScope
from plume.errors import Forbidden, NotFound, invalid_field
from plume.models import ApiKey, ApiKeyRole, Organization, OrganizationKind
from plume.web.pagination import PageRequest

# Each role can do all that the roles before it can, for its own organisation.
ROLE_RANK = {ApiKeyRole.AGENT: 0, ApiKeyRole.TENANT_ADMIN: 1, ApiKeyRole.OPERATOR_ADMIN: 2}


def manageable_roles(caller: ApiKeyRole | None) -> list[ApiKeyRole]:
    """The roles of the keys a caller manages (lists, mints, revokes): those that rank no
    higher than its own; every role for the system (the command line, None)."""
    if caller is None:
        return list(ROLE_RANK)
    return [role for role, rank in ROLE_RANK.items() if rank <= ROLE_RANK[caller]]


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
    def __init__(
        self,
        session: AsyncSession,
        scope: TenantScope,
        hasher: KeyHasher,
        *,
        max_lifetime: timedelta | None = None,
    ) -> None:
        self.repository = ApiKeyRepository(session, scope)
        self.hasher = hasher
        self.max_lifetime = max_lifetime

    async def mint(
        self,
        organization: Organization,
        *,
        name: str,
        role: ApiKeyRole,
        expires_at: datetime | None = None,
        created_by: uuid.UUID | None = None,
        caller_role: ApiKeyRole | None = None,
    ) -> ApiKeyCreated:
        """A new key; `caller_role` is the role of the key asking (None: the system), which
        mints no key above its own role."""
        if role not in manageable_roles(caller_role):
            raise Forbidden("Une clé d'API ne peut pas créer de clé d'un rôle supérieur au sien.")
        if role is ApiKeyRole.OPERATOR_ADMIN and organization.kind is not OrganizationKind.OPERATOR:
            raise invalid_field("role", "Seule l'organisation opérateur a des clés operator_admin.")
        now = datetime.now(UTC)
        if expires_at is not None and expires_at <= now:
            raise invalid_field("expires_at", "La date d'expiration doit être dans le futur.")
        if self.max_lifetime is not None:
            latest = now + self.max_lifetime
            if expires_at is None:
                expires_at = latest
            elif expires_at > latest:
                raise invalid_field(
                    "expires_at",
                    f"Une clé vit au plus {self.max_lifetime.days} jours : "
                    f"au plus tard le {latest.date().isoformat()}.",
                )
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

    async def list_page(
        self,
        organization_id: uuid.UUID,
        page: PageRequest,
        *,
        caller_role: ApiKeyRole | None = None,
    ) -> Sequence[ApiKey]:
        """The organisation's keys that `caller_role` manages (None: the system, every key):
        a tenant admin does not see the operator's operator_admin keys as its own."""
        roles = None if caller_role is None else manageable_roles(caller_role)
        return await self.repository.list_page(organization_id, page, roles=roles)

    async def revoke(self, key_id: uuid.UUID, *, caller_role: ApiKeyRole | None = None) -> ApiKey:
        """Revoke a key of the scope; `caller_role` (None: the system) revokes no key above
        its own role (403 `forbidden`: the key is its own organisation's)."""
        key = await self.repository.get(key_id)
        if key is None:
            raise NotFound("Aucune clé d'API ne porte cet identifiant.")
        if key.role not in manageable_roles(caller_role):
            raise Forbidden(
                f"Le rôle de votre clé d'API ne permet pas de révoquer une clé {key.role.value}."
            )
        revoked = await self.repository.revoke(key)
        if revoked is None:
            raise NotFound("Aucune clé d'API ne porte cet identifiant.")
        return revoked

    async def revoke_named(self, organization_id: uuid.UUID, name_prefix: str) -> int:
        """Revoke the active keys of an organisation whose name starts with `name_prefix`."""
        keys = await self.repository.active_named(organization_id, name_prefix)
        for key in keys:
            await self.repository.revoke(key)
        return len(keys)


async def find_key(session: AsyncSession, scope: TenantScope, key_id: uuid.UUID) -> ApiKey | None:
    """A key of the scope, by its id (GET /v1/me)."""
    return await ApiKeyRepository(session, scope).get(key_id)
