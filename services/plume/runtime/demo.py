"""Demo tenants for `plume demo`: seeded once, with fresh keys minted at every start."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from plume.audit import trail as audit
from plume.credentials.secrets import KeyHasher
from plume.credentials.service import ApiKeyService
from plume.db import TenantScope
from plume.models import ApiKeyRole, Organization
from plume.organizations.schemas import OrganizationCreate
from plume.organizations.service import OrganizationService

DEMO_KEY_PREFIX = "demo: "
CC4R_SIREN = "200069524"
LA_HAYE_INSEE = "76349"


@dataclass(frozen=True)
class DemoKey:
    organization: str
    slug: str
    role: str
    key: str


async def _ensure(
    service: OrganizationService, slug: str, payload: OrganizationCreate
) -> Organization:
    existing = await service.find_by_slug(slug)
    return existing if existing is not None else await service.create(payload)


async def seed_demo(session: AsyncSession, hasher: KeyHasher) -> list[DemoKey]:
    """Create the demo tenants if missing; revoke the previous demo keys and mint new ones."""
    system = TenantScope.everything()
    organizations = OrganizationService(session, system)
    operator, _ = await organizations.ensure_operator()
    epci = await _ensure(
        organizations,
        CC4R_SIREN,
        OrganizationCreate(
            kind="epci", name="Communauté de communes des 4 Rivières", siren=CC4R_SIREN
        ),
    )
    commune = await _ensure(
        organizations,
        LA_HAYE_INSEE,
        OrganizationCreate(
            kind="commune", name="La Haye", insee_code=LA_HAYE_INSEE, parent_id=epci.id
        ),
    )
    keys = ApiKeyService(session, system, hasher)
    minted: list[DemoKey] = []
    wanted = [
        (operator, ApiKeyRole.OPERATOR_ADMIN),
        (epci, ApiKeyRole.TENANT_ADMIN),
        (commune, ApiKeyRole.TENANT_ADMIN),
        (commune, ApiKeyRole.AGENT),
    ]
    for organization in (operator, epci, commune):
        revoked = await keys.revoke_named(organization.id, DEMO_KEY_PREFIX)
        if revoked:
            await audit.record(
                session,
                organization_id=organization.id,
                action="api_key.revoke",
                actor=audit.Actor.system(),
                details={"name_prefix": DEMO_KEY_PREFIX, "revoked": revoked},
            )
    for organization, role in wanted:
        created = await keys.mint(organization, name=f"{DEMO_KEY_PREFIX}{role.value}", role=role)
        await audit.record(
            session,
            organization_id=organization.id,
            action="api_key.create",
            actor=audit.Actor.system(),
            target=("api_key", str(created.id)),
            details=audit.key_details(created.name, created.role, created.prefix),
        )
        minted.append(DemoKey(organization.name, organization.slug, role.value, created.key))
    return minted
