"""All SQL about API keys."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import bindparam, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from plume.db import TenantScope
from plume.models import ApiKey, Organization
from plume.web.pagination import PageRequest, paginate

LAST_USED_RESOLUTION_S = 60

# Built once: this runs on every request, and building the aliased joins costs more than
# running them.
_parent = aliased(Organization)
_grandparent = aliased(Organization)
_KEY_WITH_CHAIN = (
    select(ApiKey, Organization, _parent, _grandparent)
    .join(Organization, Organization.id == ApiKey.organization_id)
    .outerjoin(_parent, _parent.id == Organization.parent_id)
    .outerjoin(_grandparent, _grandparent.id == _parent.parent_id)
    .where(ApiKey.secret_hash == bindparam("secret_hash"))
)


class ApiKeyRepository:
    def __init__(self, session: AsyncSession, scope: TenantScope) -> None:
        self.session = session
        self.scope = scope

    async def get(self, key_id: uuid.UUID) -> ApiKey | None:
        statement = select(ApiKey).where(
            ApiKey.id == key_id, self.scope.clause(ApiKey.organization_id)
        )
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def find_by_hash(self, secret_hash: str) -> tuple[ApiKey, list[Organization]] | None:
        """The key and its organisation's chain, operator first, in one round trip (the
        tree is at most three levels deep)."""
        statement = _KEY_WITH_CHAIN.where(self.scope.clause(ApiKey.organization_id))
        row = (await self.session.execute(statement, {"secret_hash": secret_hash})).one_or_none()
        if row is None:
            return None
        key, organization, parent_row, grandparent_row = row
        chain = [level for level in (grandparent_row, parent_row) if level is not None]
        return key, [*chain, organization]

    async def list_page(self, organization_id: uuid.UUID, page: PageRequest) -> Sequence[ApiKey]:
        statement = select(ApiKey).where(
            ApiKey.organization_id == organization_id, self.scope.clause(ApiKey.organization_id)
        )
        statement = paginate(statement, page, ApiKey.created_at, ApiKey.id)
        return (await self.session.execute(statement)).scalars().all()

    async def add(self, key: ApiKey) -> ApiKey:
        self.session.add(key)
        await self.session.flush()
        await self.session.refresh(key)
        return key

    async def revoke(self, key: ApiKey) -> ApiKey:
        if key.revoked_at is None:
            key.revoked_at = await self._now()
            await self.session.flush()
        return key

    async def revoke_named(self, organization_id: uuid.UUID, name_prefix: str) -> int:
        """Revoke the active keys of an organisation whose name starts with `name_prefix`."""
        statement = (
            update(ApiKey)
            .where(
                ApiKey.organization_id == organization_id,
                ApiKey.name.startswith(name_prefix, autoescape=True),
                ApiKey.revoked_at.is_(None),
                self.scope.clause(ApiKey.organization_id),
            )
            .values(revoked_at=func.now())
        )
        result = await self.session.execute(statement)
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def rehash(self, key: ApiKey, secret_hash: str, secret_version: str) -> None:
        key.secret_hash = secret_hash
        key.secret_version = secret_version
        await self.session.flush()

    async def touch(self, key_id: uuid.UUID) -> None:
        """Record use, writing at most once a minute per key rather than on every request."""
        statement = (
            update(ApiKey)
            .where(
                ApiKey.id == key_id,
                self.scope.clause(ApiKey.organization_id),
                or_(
                    ApiKey.last_used_at.is_(None),
                    ApiKey.last_used_at
                    < func.now() - func.make_interval(0, 0, 0, 0, 0, 0, LAST_USED_RESOLUTION_S),
                ),
            )
            .values(last_used_at=func.now())
            .execution_options(synchronize_session=False)
        )
        await self.session.execute(statement)

    async def _now(self) -> datetime:
        now: datetime | None = await self.session.scalar(select(func.now()))
        assert now is not None
        return now
