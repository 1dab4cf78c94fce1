"""OAuth2 clients in PostgreSQL. A client is found before the caller is known by
`oauth_client_lookup` (credentials/sql/oauth_client_lookup.sql, SECURITY DEFINER), which
checks its secret's hash (the token endpoint) or finds it by identifier alone (an access
token's verification), and records its use; it is revoked by `oauth_client_revoke`
(credentials/sql/oauth_client_revoke.sql), within the caller's scope.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Uuid, column, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from plume.credentials.repository import _LEVELS, _ORGANIZATION_COLUMNS, _spread, _typed
from plume.db import TenantScope
from plume.models import ApiKeyRole, OAuthClient, Organization
from plume.web.pagination import PageRequest, paginate

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
