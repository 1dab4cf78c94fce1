"""OAuth2 clients (client credentials grant): creating, listing, revoking, and finding the
client of a token request or of an access token. Mirrors the API keys (plume.credentials
.service and .repository): a secret shown once and stored as an HMAC under the server
secret, found under a previous secret after a rotation and then re-hashed; a client looked
up before the caller is known through `oauth_client_lookup` (credentials/sql/), revoked by
`oauth_client_revoke`, within the caller's scope.
"""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Uuid, column, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from plume.credentials.repository import (
    _LEVELS,
    _ORGANIZATION_COLUMNS,
    _spread,
    _typed,
)
from plume.credentials.schemas import OAuthClientCreated, OAuthClientOut
from plume.credentials.secrets import KeyHasher
from plume.credentials.service import manageable_roles
from plume.db import TenantScope
from plume.errors import Forbidden, NotFound, invalid_field
from plume.models import ApiKeyRole, OAuthClient, Organization
from plume.web.pagination import PageRequest, paginate

CLIENT_ID_PREFIX = "plc_"
SECRET_PREFIX = "plcs_"  # noqa: S105 (a prefix)
_CLIENT_ID_FORMAT = re.compile(r"plc_[A-Za-z0-9_-]{16,60}")
_SECRET_FORMAT = re.compile(r"plcs_[A-Za-z0-9_-]{43,128}")

_CLIENT_COLUMNS = [c for c in OAuthClient.__table__.columns if c.name != "secret_hash"]
_LOOKED_UP = ", ".join(
    _spread("oauth_client", _CLIENT_COLUMNS)
    + [name for level in _LEVELS for name in _spread(level, _ORGANIZATION_COLUMNS)]
    + ["l.children"]
)
_LOOKUP = text(
    f"SELECT {_LOOKED_UP} FROM"  # noqa: S608 (constants)
    " oauth_client_lookup(CAST(:client_id AS text), CAST(:hashes AS text[]),"
    " CAST(:version AS text)) AS l"
).columns(
    *_typed("client", _CLIENT_COLUMNS),
    *(typed for level in _LEVELS for typed in _typed(level, _ORGANIZATION_COLUMNS)),
    column("children", ARRAY(Uuid())),
)
_REVOKE = text("SELECT oauth_client_revoke(CAST(:id AS uuid))")


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


@dataclass(frozen=True, slots=True)
class FoundClient:
    """A client, its organisation's chain (operator first) and, for an EPCI's tenant admin,
    the EPCI's communes; read-only copies, in no session."""

    client: OAuthClient
    chain: list[Organization]
    children: list[uuid.UUID]


class OAuthClientRepository:
    def __init__(self, session: AsyncSession, scope: TenantScope) -> None:
        self.session = session
        self.scope = scope

    async def get(self, client_uuid: uuid.UUID) -> OAuthClient | None:
        statement = select(OAuthClient).where(
            OAuthClient.id == client_uuid, self.scope.clause(OAuthClient.organization_id)
        )
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def lookup(
        self,
        client_id: str,
        secret_hashes: Sequence[str] | None = None,
        current_version: str | None = None,
    ) -> FoundClient | None:
        """The client `client_id` with its chain, in one round trip; with `secret_hashes`,
        only if its secret hashes to one of them (then re-hashed under the first, if found
        under another). Records its use. Runs before the caller is known: needs no scope."""
        parameters = {
            "client_id": client_id,
            "hashes": list(secret_hashes) if secret_hashes is not None else None,
            "version": current_version,
        }
        row = (await self.session.execute(_LOOKUP, parameters)).one_or_none()
        if row is None:
            return None
        values = tuple(row)
        client = OAuthClient(**{c.key: v for c, v in zip(_CLIENT_COLUMNS, values, strict=False)})
        levels: list[Organization] = []
        start = len(_CLIENT_COLUMNS)
        for _ in _LEVELS:
            end = start + len(_ORGANIZATION_COLUMNS)
            level = dict(
                zip((c.key for c in _ORGANIZATION_COLUMNS), values[start:end], strict=True)
            )
            if level["id"] is not None:
                levels.append(Organization(**level))
            start = end
        return FoundClient(client, levels[::-1], list(values[-1] or []))

    async def list_page(
        self, organization_id: uuid.UUID, page: PageRequest, roles: Sequence[ApiKeyRole]
    ) -> Sequence[OAuthClient]:
        statement = select(OAuthClient).where(
            OAuthClient.organization_id == organization_id,
            OAuthClient.role.in_(list(roles)),
            self.scope.clause(OAuthClient.organization_id),
        )
        statement = paginate(statement, page, OAuthClient.created_at, OAuthClient.id)
        return (await self.session.execute(statement)).scalars().all()

    async def add(self, client: OAuthClient) -> OAuthClient:
        self.session.add(client)
        await self.session.flush()
        await self.session.refresh(client, ["created_at"])
        return client

    async def revoke(self, client: OAuthClient) -> OAuthClient | None:
        """Revoked now, unless it already was; None if the transaction's scope does not
        hold it (the function checks the scope again)."""
        revoked: datetime | None = await self.session.scalar(_REVOKE, {"id": client.id})
        if revoked is None:
            return None
        await self.session.refresh(client, ["revoked_at"])
        return client


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
