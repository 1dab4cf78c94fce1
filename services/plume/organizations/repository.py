"""All SQL about organisations. Every query is filtered by the caller's TenantScope.

The application role reads organisations and creates them (the system's scope only); it
changes none of their columns: the operator's changes go through `organization_update`
(source: `organizations/sql/organization_update.sql`), which requires the system's scope.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, select, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from plume.db import TenantScope
from plume.models import Organization, OrganizationKind, OrganizationStatus
from plume.web.pagination import PageRequest, paginate

_UPDATE = text(
    "SELECT organization_update(CAST(:id AS uuid), CAST(:name AS text), CAST(:status AS text),"
    " :policy)"
).bindparams(bindparam("policy", type_=JSONB))

_SET_SIRET = text("SELECT organization_set_siret(CAST(:id AS uuid), CAST(:siret AS text))")


class OrganizationRepository:
    def __init__(self, session: AsyncSession, scope: TenantScope) -> None:
        self.session = session
        self.scope = scope

    async def get(self, organization_id: uuid.UUID) -> Organization | None:
        statement = select(Organization).where(
            Organization.id == organization_id, self.scope.clause(Organization.id)
        )
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def get_by_slug(self, slug: str) -> Organization | None:
        statement = select(Organization).where(
            Organization.slug == slug, self.scope.clause(Organization.id)
        )
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def get_operator(self) -> Organization | None:
        statement = select(Organization).where(
            Organization.kind == OrganizationKind.OPERATOR, self.scope.clause(Organization.id)
        )
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def find_identifier_owner(
        self, *, insee_code: str | None, siren: str | None
    ) -> Organization | None:
        """Uniqueness is global: look across every tenant the caller may see."""
        conditions = []
        if insee_code is not None:
            conditions.append(Organization.insee_code == insee_code)
        if siren is not None:
            conditions.append(Organization.siren == siren)
        if not conditions:
            return None
        statement = select(Organization).where(
            conditions[0] if len(conditions) == 1 else conditions[0] | conditions[1],
            self.scope.clause(Organization.id),
        )
        return (await self.session.execute(statement.limit(1))).scalar_one_or_none()

    async def list_page(
        self, page: PageRequest, *, kind: OrganizationKind | None = None
    ) -> Sequence[Organization]:
        statement = select(Organization).where(self.scope.clause(Organization.id))
        if kind is not None:
            statement = statement.where(Organization.kind == kind)
        statement = paginate(statement, page, Organization.created_at, Organization.id)
        return (await self.session.execute(statement)).scalars().all()

    async def list_all(self) -> Sequence[Organization]:
        statement = (
            select(Organization)
            .where(self.scope.clause(Organization.id))
            .order_by(Organization.created_at, Organization.id)
        )
        return (await self.session.execute(statement)).scalars().all()

    async def directory(self) -> list[tuple[str, str, str, str | None]]:
        """Slug, name, kind and parent's slug of every organisation in scope (metrics)."""
        parent = aliased(Organization)
        statement = (
            select(Organization.slug, Organization.name, Organization.kind, parent.slug)
            .outerjoin(parent, parent.id == Organization.parent_id)
            .where(self.scope.clause(Organization.id))
        )
        rows = (await self.session.execute(statement)).all()
        return [(slug, name, kind.value, above) for slug, name, kind, above in rows]

    async def chain(self, organization: Organization) -> list[Organization]:
        """The organisation and its ancestors, operator first (the tree is 3 levels deep)."""
        chain = [organization]
        current = organization
        while current.parent_id is not None:
            parent = await self.get(current.parent_id)
            if parent is None:
                break
            chain.insert(0, parent)
            current = parent
        return chain

    async def child_ids(self, organization_id: uuid.UUID) -> list[uuid.UUID]:
        statement = select(Organization.id).where(
            Organization.parent_id == organization_id, self.scope.clause(Organization.id)
        )
        return list((await self.session.execute(statement)).scalars().all())

    async def add(self, organization: Organization) -> Organization:
        self.session.add(organization)
        await self.session.flush()
        await self.session.refresh(organization)
        return organization

    async def set_siret(self, organization: Organization, siret: str | None) -> None:
        """The operator's change of the SIRET (organization_set_siret: the system's scope)."""
        await self.session.execute(_SET_SIRET, {"id": organization.id, "siret": siret})
        await self.session.refresh(organization, ["siret", "updated_at"])

    async def siret_owner(self, siret: str) -> Organization | None:
        statement = select(Organization).where(
            Organization.siret == siret, self.scope.clause(Organization.id)
        )
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def update(
        self,
        organization: Organization,
        *,
        name: str,
        status: OrganizationStatus,
        policy: dict[str, Any],
    ) -> Organization:
        """The operator's change: name, status and the policy set at this level."""
        await self.session.execute(
            _UPDATE,
            {
                "id": organization.id,
                "name": name,
                "status": status.value,
                "policy": policy,
            },
        )
        await self.session.refresh(organization)
        return organization
