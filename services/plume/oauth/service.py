"""OAuth2 clients (client credentials grant): creating, listing, revoking, and finding the
client of a token request. Mirrors the API keys (plume.credentials.service): a secret shown
once and stored as an HMAC under the server secret (found under a previous secret after a
rotation, then re-hashed), no client above its creator's role.
"""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from plume.credentials.secrets import KeyHasher
from plume.credentials.service import manageable_roles
from plume.db import TenantScope
from plume.errors import Forbidden, NotFound, invalid_field
from plume.models import ApiKeyRole, OAuthClient, Organization
from plume.oauth.repository import FoundClient, OAuthClientRepository
from plume.oauth.schemas import OAuthClientCreated, OAuthClientOut
from plume.web.pagination import PageRequest

CLIENT_ID_PREFIX = "plc_"
SECRET_PREFIX = "plcs_"  # noqa: S105 (a prefix)
_CLIENT_ID_FORMAT = re.compile(r"plc_[A-Za-z0-9_-]{16,60}")
_SECRET_FORMAT = re.compile(r"plcs_[A-Za-z0-9_-]{43,128}")


def generate_client_id() -> str:
    return CLIENT_ID_PREFIX + secrets.token_urlsafe(16)


def generate_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def is_client_id(value: str) -> bool:
    return _CLIENT_ID_FORMAT.fullmatch(value) is not None


def is_client_secret(value: str) -> bool:
    return _SECRET_FORMAT.fullmatch(value) is not None


def client_status(client: OAuthClient) -> str:
    return "revoked" if client.revoked_at is not None else "active"


def client_out(client: OAuthClient) -> OAuthClientOut:
    return OAuthClientOut(
        id=client.id,
        organization_id=client.organization_id,
        client_id=client.client_id,
        name=client.name,
        role=client.role.value,
        status=client_status(client),
        created_at=client.created_at,
        revoked_at=client.revoked_at,
        last_used_at=client.last_used_at,
        created_by=client.created_by_key_id,
    )


class OAuthClientService:
    def __init__(self, session: AsyncSession, scope: TenantScope, hasher: KeyHasher) -> None:
        self.repository = OAuthClientRepository(session, scope)
        self.hasher = hasher

    async def create(
        self,
        organization: Organization,
        *,
        name: str,
        role: ApiKeyRole,
        created_by: uuid.UUID | None = None,
        caller_role: ApiKeyRole | None = None,
    ) -> OAuthClientCreated:
        """A new client; `caller_role` (None: the system) creates none above its own role,
        and no client is an operator admin."""
        if role not in manageable_roles(caller_role):
            raise Forbidden(
                "Votre rôle ne permet pas de créer un client OAuth2 d'un rôle supérieur au sien."
            )
        if role is ApiKeyRole.OPERATOR_ADMIN:
            raise invalid_field("role", "Un client OAuth2 est agent ou tenant_admin.")
        secret = generate_secret()
        client = await self.repository.add(
            OAuthClient(
                organization_id=organization.id,
                client_id=generate_client_id(),
                name=name,
                role=role,
                secret_hash=self.hasher.hash(secret),
                secret_version=self.hasher.version,
                created_by_key_id=created_by,
            )
        )
        return OAuthClientCreated(**client_out(client).model_dump(), client_secret=secret)

    async def list_page(
        self,
        organization_id: uuid.UUID,
        page: PageRequest,
        *,
        caller_role: ApiKeyRole | None = None,
    ) -> Sequence[OAuthClient]:
        return await self.repository.list_page(organization_id, page, manageable_roles(caller_role))

    async def revoke(
        self, client_uuid: uuid.UUID, *, caller_role: ApiKeyRole | None = None
    ) -> OAuthClient:
        """Revoke a client of the scope; `caller_role` revokes none above its own role."""
        client = await self.repository.get(client_uuid)
        if client is None:
            raise NotFound("Aucun client OAuth2 ne porte cet identifiant.")
        if client.role not in manageable_roles(caller_role):
            raise Forbidden(
                f"Votre rôle ne permet pas de révoquer un client OAuth2 {client.role.value}."
            )
        revoked = await self.repository.revoke(client)
        if revoked is None:
            raise NotFound("Aucun client OAuth2 ne porte cet identifiant.")
        return revoked


async def authenticate_client(
    session: AsyncSession, client_id: str, secret: str, hashers: list[KeyHasher]
) -> FoundClient | None:
    """The client whose identifier and secret these are (under the current server secret or
    a previous one), whatever its state; None if they do not match."""
    if not is_client_id(client_id) or not is_client_secret(secret):
        return None
    repository = OAuthClientRepository(session, TenantScope.everything())
    return await repository.lookup(client_id, [h.hash(secret) for h in hashers], hashers[0].version)


async def find_client(
    session: AsyncSession, scope: TenantScope, client_uuid: uuid.UUID
) -> OAuthClient | None:
    """A client of the scope, by its id (a background job's, GET /v1/me)."""
    return await OAuthClientRepository(session, scope).get(client_uuid)
