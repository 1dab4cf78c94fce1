"""All SQL about API keys.

The application role reads keys within its scope (never their hashes: column privileges)
and mints them; it changes none. A key is found before its caller is known by
`api_key_lookup` (source: `credentials/sql/api_key_lookup.sql`), which also re-hashes it
after a rotation of the server secret and records its use; it is revoked by
`api_key_revoke` (`credentials/sql/api_key_revoke.sql`), within the caller's scope.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from sqlalchemy import Uuid, column, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnClause, KeyedColumnElement

from plume.db import TenantScope, driver_sql
from plume.models import ApiKey, ApiKeyRole, Organization
from plume.web.pagination import PageRequest, paginate

# api_key_lookup records a key's use at most this often (its source says 60 seconds too).
LAST_USED_RESOLUTION_S = 60

# Built once: this runs on every request. The function answers the key, its organisation,
# the organisation's parent and grandparent (composite values, NULL for a missing level) and
# the communes of an EPCI's tenant admin; each composite is spread into its columns (never
# the key's hash). Executed as a plain statement, its rows made into entities by hand: the
# ORM's loading of four entities from a textual statement costs more than the lookup.
_KEY_COLUMNS = [c for c in ApiKey.__table__.columns if c.name != "secret_hash"]
_ORGANIZATION_COLUMNS = list(Organization.__table__.columns)
_LEVELS = ("organization", "parent", "grandparent")


def _spread(composite: str, columns: Sequence[KeyedColumnElement[Any]]) -> list[str]:
    return [f"(l.{composite}).{c.name}" for c in columns]


def _typed(prefix: str, columns: Sequence[KeyedColumnElement[Any]]) -> list[ColumnClause[Any]]:
    return [column(f"{prefix}_{c.name}", c.type) for c in columns]


_LOOKED_UP = ", ".join(
    _spread("api_key", _KEY_COLUMNS)
    + [name for level in _LEVELS for name in _spread(level, _ORGANIZATION_COLUMNS)]
    + ["l.children"]
)
_LOOKUP = text(
    f"SELECT {_LOOKED_UP} FROM"  # noqa: S608 (constants)
    " api_key_lookup(CAST(:hashes AS text[]), CAST(:version AS text)) AS l"
).columns(
    *_typed("key", _KEY_COLUMNS),
    *(typed for level in _LEVELS for typed in _typed(level, _ORGANIZATION_COLUMNS)),
    column("children", ARRAY(Uuid())),
)
_REVOKE = text("SELECT api_key_revoke(CAST(:id AS uuid))")
# The same, on a psycopg connection without a session; its columns' types, to read its row
# as SQLAlchemy would (enumerations, JSON), once per dialect.
_LOOKUP_ON_DRIVER = driver_sql(_LOOKUP)
_LOOKUP_TYPES = [c.type for c in _LOOKUP.selected_columns]
_READERS: dict[str, list[Callable[[Any], Any] | None]] = {}


@dataclass(frozen=True, slots=True)
class FoundKey:
    """A key, its organisation's chain (operator first) and, for an EPCI's tenant admin,
    the EPCI's communes. The key and the organisations are read-only copies, in no
    session."""

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
        return _found(tuple(row)) if row is not None else None

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


def _found(values: tuple[Any, ...]) -> FoundKey:
    key = ApiKey(**{c.key: v for c, v in zip(_KEY_COLUMNS, values, strict=False)})
    levels: list[Organization] = []
    start = len(_KEY_COLUMNS)
    for _ in _LEVELS:
        end = start + len(_ORGANIZATION_COLUMNS)
        level = dict(zip((c.key for c in _ORGANIZATION_COLUMNS), values[start:end], strict=True))
        if level["id"] is not None:
            levels.append(Organization(**level))
        start = end
    # Operator first.
    return FoundKey(key, levels[::-1], list(values[-1] or []))


async def lookup_alone(
    driver: psycopg.AsyncConnection[Any],
    dialect: Dialect,
    secret_hashes: Sequence[str],
    current_version: str,
) -> FoundKey | None:
    """`ApiKeyRepository.lookup` on a connection without a session, in autocommit mode
    (plume.db.pooled_driver_connection): a transaction of its own, the key's re-hash and use
    committed with it."""
    parameters = {"hashes": list(secret_hashes), "version": current_version}
    cursor = await driver.execute(_LOOKUP_ON_DRIVER, parameters)
    row = await cursor.fetchone()
    if row is None:
        return None
    readers = _READERS.get(dialect.name)
    if readers is None:
        readers = _READERS[dialect.name] = [
            t.dialect_impl(dialect).result_processor(dialect, None) for t in _LOOKUP_TYPES
        ]
    return _found(
        tuple(v if read is None else read(v) for read, v in zip(readers, row, strict=True))
    )
