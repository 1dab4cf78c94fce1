"""One-line builders for organisations and API keys, written through the service layer."""

from __future__ import annotations

import random
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from plume.credentials.secrets import KeyHasher
from plume.credentials.service import ApiKeyService
from plume.db import TenantScope
from plume.models import ApiKeyRole, Organization
from plume.organizations.identifiers import luhn_valid
from plume.organizations.schemas import OrganizationCreate
from plume.organizations.service import OrganizationService

_used: set[str] = set()


def fresh_insee() -> str:
    while True:
        code = f"{random.randint(1000, 95999):05d}"
        if code not in _used:
            _used.add(code)
            return code


def fresh_siren() -> str:
    while True:
        base = f"2{random.randint(0, 9999999):07d}"
        for check in "0123456789":
            if luhn_valid(base + check) and base + check not in _used:
                _used.add(base + check)
                return base + check


@dataclass
class Key:
    id: str
    secret: str
    organization: Organization
    role: ApiKeyRole

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secret}"}


class Factory:
    def __init__(self, session: AsyncSession, secret: str) -> None:
        self.session = session
        self.scope = TenantScope.everything()
        self.organizations = OrganizationService(session, self.scope)
        self.keys = ApiKeyService(session, self.scope, KeyHasher.from_secret(secret))

    async def operator(self) -> Organization:
        operator, _ = await self.organizations.ensure_operator()
        return operator

    async def epci(
        self, name: str = "Communauté de communes de test", **policy: object
    ) -> Organization:
        await self.operator()
        return await self.organizations.create(
            OrganizationCreate(kind="epci", name=name, siren=fresh_siren(), policy=policy or None)
        )

    async def commune(
        self, name: str = "Commune de test", parent: Organization | None = None, **policy: object
    ) -> Organization:
        await self.operator()
        return await self.organizations.create(
            OrganizationCreate(
                kind="commune",
                name=name,
                insee_code=fresh_insee(),
                parent_id=parent.id if parent else None,
                policy=policy or None,
            )
        )

    async def key(self, organization: Organization, role: str = "agent", **kwargs: object) -> Key:
        created = await self.keys.mint(
            organization,
            name=f"test {role}",
            role=ApiKeyRole(role),
            **kwargs,  # type: ignore[arg-type]
        )
        return Key(str(created.id), created.key, organization, ApiKeyRole(role))

    async def operator_key(self) -> Key:
        return await self.key(await self.operator(), "operator_admin")
