"""All SQL about API keys.

The application role reads keys within its scope (never their hashes: column privileges)
and mints them; it changes none. A key is found before its caller is known by
`api_key_lookup` (source: `credentials/sql/api_key_lookup.sql`), which also re-hashes it
after a rotation of the server secret and records its use; it is revoked by
`api_key_revoke` (`credentials/sql/api_key_revoke.sql`), within the caller's scope.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Uuid, column, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from plume.db import TenantScope
from plume.models import ApiKey, ApiKeyRole, Organization
from plume.web.pagination import PageRequest, paginate

# api_key_lookup records a key's use at most this often (its source says 60 seconds too).
LAST_USED_RESOLUTION_S = 60

# Built once: this runs on every request. The function answers the key, its organisation,
# the organisation's parent and grandparent (composite values, NULL for a missing level) and
# the communes of an EPCI's tenant admin; each composite is spread into the columns of the
# entity it loads. The key's hash is never read.
_parent = aliased(Organization)
_grandparent = aliased(Organization)
_KEY_COLUMNS = [c for c in ApiKey.__table__.columns if c.name != "secret_hash"]
_ORGANIZATION_COLUMNS = list(Organization.__table__.columns)
_children = column("children", ARRAY(Uuid()))


def _spread(composite: str, columns: Sequence[object]) -> list[str]:
    return [f"({composite}).{c.name}" for c in columns]  # type: ignore[attr-defined]


_LOOKED_UP = ", ".join(
    _spread("l.api_key", _KEY_COLUMNS)
    + _spread("l.organization", _ORGANIZATION_COLUMNS)
    + _spread("l.parent", _ORGANIZATION_COLUMNS)
    + _spread("l.grandparent", _ORGANIZATION_COLUMNS)
    + ["l.children"]
)
_LOOKUP = select(ApiKey, Organization, _parent, _grandparent, _children).from_statement(
    text(
        f"SELECT {_LOOKED_UP} FROM"  # noqa: S608 (constants)
        " api_key_lookup(CAST(:hashes AS text[]), CAST(:version AS text)) AS l"
    ).columns(
        *_KEY_COLUMNS,
        *_ORGANIZATION_COLUMNS,
        *(getattr(_parent, c.key) for c in _ORGANIZATION_COLUMNS),
        *(getattr(_grandparent, c.key) for c in _ORGANIZATION_COLUMNS),
        _children,
    )
)
_REVOKE = text("SELECT api_key_revoke(CAST(:id AS uuid))")


@dataclass(frozen=True, slots=True)
class FoundKey:
    """A key, its organisation's chain (operator first) and, for an EPCI's tenant admin,
    the EPCI's communes."""

    key: ApiKey
    chain: list[Organization]
    children: list[uuid.UUID]


class ApiKeyRepository:
    def __init__(self, session: AsyncSession, scope: TenantScope) -> None:
        self.session = session
        self.scope = scope

    async def get(self, key_id: uuid.UUID) -> ApiKey | None:
        statement = select(ApiKey).where(
            ApiKey.id == key_id, self.scope.clause(ApiKey.organization_id)
        )
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def lookup(self, secret_hashes: Sequence[str], current_version: str) -> FoundKey | None:
        """The key whose secret hashes to one of `secret_hashes` (under the current server
        secret first), with its chain, in one round trip; it is re-hashed under the current
        secret (the first hash, `current_version`) if found under another, and its use
        recorded. Runs before the caller is known: needs no scope."""
        parameters = {"hashes": list(secret_hashes), "version": current_version}
        row = (await self.session.execute(_LOOKUP, parameters)).one_or_none()
        if row is None:
            return None
        key, organization, parent, grandparent, children = row
        chain = [level for level in (grandparent, parent) if level is not None]
        return FoundKey(key, [*chain, organization], list(children or []))

    async def list_page(
        self,
        organization_id: uuid.UUID,
        page: PageRequest,
        *,
        roles: Sequence[ApiKeyRole] | None = None,
    ) -> Sequence[ApiKey]:
        statement = select(ApiKey).where(
            ApiKey.organization_id == organization_id, self.scope.clause(ApiKey.organization_id)
        )
        if roles is not None:
            statement = statement.where(ApiKey.role.in_(list(roles)))
        statement = paginate(statement, page, ApiKey.created_at, ApiKey.id)
        return (await self.session.execute(statement)).scalars().all()

    async def active_named(self, organization_id: uuid.UUID, name_prefix: str) -> Sequence[ApiKey]:
        """The active keys of an organisation whose name starts with `name_prefix`."""
        statement = select(ApiKey).where(
            ApiKey.organization_id == organization_id,
            ApiKey.name.startswith(name_prefix, autoescape=True),
            ApiKey.revoked_at.is_(None),
            self.scope.clause(ApiKey.organization_id),
        )
        return (await self.session.execute(statement)).scalars().all()

    async def add(self, key: ApiKey) -> ApiKey:
        self.session.add(key)
        await self.session.flush()
        await self.session.refresh(key, ["created_at"])
        return key

    async def revoke(self, key: ApiKey) -> ApiKey | None:
        """Revoked now, unless it already was; None if the transaction's scope does not
        hold it (the function checks the scope again)."""
        revoked: datetime | None = await self.session.scalar(_REVOKE, {"id": key.id})
        if revoked is None:
            return None
        await self.session.refresh(key, ["revoked_at"])
        return key
