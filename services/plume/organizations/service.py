"""Decisions about the organisation tree: who may be whose parent, policy, status."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from plume.db import TenantScope
from plume.errors import Conflict, NotFound, invalid_field
from plume.models import Organization, OrganizationKind, OrganizationStatus
from plume.organizations.policy import (
    EffectivePolicy,
    effective_policy,
    merge_patch,
    personal_data_problem,
    publication_mode_problem,
)
from plume.organizations.repository import OrganizationRepository
from plume.organizations.schemas import (
    AdminOrganizationOut,
    OrganizationCreate,
    OrganizationOut,
    OrganizationUpdate,
)
from plume.web.pagination import PageRequest

OPERATOR_SLUG = "operator"
OPERATOR_NAME = "Seine-Maritime Numérique"

_KIND_LABEL = {
    OrganizationKind.OPERATOR: "l'opérateur",
    OrganizationKind.EPCI: "un EPCI",
    OrganizationKind.COMMUNE: "une commune",
}


def organization_out(organization: Organization, policy: EffectivePolicy) -> OrganizationOut:
    return OrganizationOut(
        id=organization.id,
        kind=organization.kind.value,
        name=organization.name,
        slug=organization.slug,
        status=organization.status.value,
        parent_id=organization.parent_id,
        insee_code=organization.insee_code,
        siren=organization.siren,
        siret=organization.siret,
        policy=policy,
        created_at=organization.created_at,
    )


class OrganizationService:
    def __init__(self, session: AsyncSession, scope: TenantScope) -> None:
        self.scope = scope
        self.repository = OrganizationRepository(session, scope)

    async def find(self, organization_id: uuid.UUID) -> Organization | None:
        return await self.repository.get(organization_id)

    async def find_by_slug(self, slug: str) -> Organization | None:
        return await self.repository.get_by_slug(slug)

    async def chain(self, organization: Organization) -> list[Organization]:
        """The organisation and its ancestors, operator first."""
        return await self.repository.chain(organization)

    async def child_ids(self, organization_id: uuid.UUID) -> list[uuid.UUID]:
        return await self.repository.child_ids(organization_id)

    async def directory(self) -> list[tuple[str, str, str, str | None]]:
        """Slug, name, kind and parent's slug of every organisation in scope."""
        return await self.repository.directory()

    async def list_all(self) -> Sequence[Organization]:
        return await self.repository.list_all()

    async def get(self, organization_id: uuid.UUID) -> Organization:
        organization = await self.repository.get(organization_id)
        if organization is None:
            raise NotFound("Aucune organisation ne porte cet identifiant.")
        return organization

    async def managed(self, own: uuid.UUID, requested: uuid.UUID | None) -> Organization:
        """What an administrator acts on: its own organisation, or the one it names
        (`organization_id`: one of an EPCI's communes) if its scope holds it; anyone else's
        is 404, as if it did not exist."""
        target = requested or own
        if not self.scope.includes(target):
            raise NotFound("Aucune organisation ne porte cet identifiant.")
        return await self.get(target)

    async def resolve(self, id_or_slug: str) -> Organization:
        """Find an organisation by UUID or slug (INSEE code, SIREN or `operator`)."""
        try:
            return await self.get(uuid.UUID(id_or_slug))
        except ValueError:
            organization = await self.repository.get_by_slug(id_or_slug.strip().upper() or "-")
            if organization is None:
                organization = await self.repository.get_by_slug(id_or_slug.strip())
            if organization is None:
                raise NotFound(f"Aucune organisation « {id_or_slug} ».") from None
            return organization

    async def effective_policy(self, organization: Organization) -> EffectivePolicy:
        chain = await self.repository.chain(organization)
        return effective_policy([level.policy for level in chain])

    async def admin_view(self, organization: Organization) -> AdminOrganizationOut:
        base = organization_out(organization, await self.effective_policy(organization))
        return AdminOrganizationOut(
            **base.model_dump(), own_policy=organization.policy, updated_at=organization.updated_at
        )

    async def list_page(self, page: PageRequest) -> Sequence[Organization]:
        return await self.repository.list_page(page)

    async def create(self, payload: OrganizationCreate) -> Organization:
        kind = OrganizationKind(payload.kind)
        if kind is OrganizationKind.COMMUNE and payload.insee_code is None:
            raise invalid_field("insee_code", "Obligatoire pour une commune.")
        if kind is OrganizationKind.EPCI and payload.siren is None:
            raise invalid_field("siren", "Obligatoire pour un EPCI.")

        parent = await self._parent_for(kind, payload.parent_id)
        insee_code = payload.insee_code if kind is OrganizationKind.COMMUNE else None
        siren = payload.siren
        owner = await self.repository.find_identifier_owner(insee_code=insee_code, siren=siren)
        if owner is not None:
            field = "insee_code" if insee_code and owner.insee_code == insee_code else "siren"
            label = "code INSEE" if field == "insee_code" else "SIREN"
            raise Conflict(
                f"Une organisation existe déjà avec ce {label} : « {owner.name} » ({owner.id})."
            )
        await self._check_siret_free(payload.siret, None)
        policy = payload.policy.model_dump(exclude_none=True) if payload.policy else {}
        _check_publication_mode(policy)
        _check_personal_data(policy, operator_level=False)
        organization = Organization(
            kind=kind,
            name=payload.name,
            slug=insee_code if kind is OrganizationKind.COMMUNE else siren,
            parent_id=parent.id,
            insee_code=insee_code,
            siren=siren,
            siret=payload.siret,
            status=OrganizationStatus.ACTIVE,
            policy=policy,
        )
        return await self.repository.add(organization)

    async def _parent_for(
        self, kind: OrganizationKind, parent_id: uuid.UUID | None
    ) -> Organization:
        if parent_id is None:
            operator = await self.repository.get_operator()
            if operator is None:
                raise Conflict(
                    "L'organisation opérateur n'existe pas ; lancez « plume bootstrap »."
                )
            return operator
        parent = await self.repository.get(parent_id)
        if parent is None:
            raise invalid_field("parent_id", "Aucune organisation ne porte cet identifiant.")
        allowed = (
            {OrganizationKind.OPERATOR, OrganizationKind.EPCI}
            if kind is OrganizationKind.COMMUNE
            else {OrganizationKind.OPERATOR}
        )
        if parent.kind not in allowed:
            rule = (
                "Une commune est rattachée à un EPCI ou à l'opérateur"
                if kind is OrganizationKind.COMMUNE
                else "Un EPCI est rattaché à l'opérateur"
            )
            raise invalid_field("parent_id", f"{rule}, pas à {_KIND_LABEL[parent.kind]}.")
        return parent

    async def update(self, organization_id: uuid.UUID, payload: OrganizationUpdate) -> Organization:
        """The operator's change (the database lets only the system's scope make it)."""
        organization = await self.get(organization_id)
        fields = payload.model_fields_set
        name, status, policy = organization.name, organization.status, organization.policy
        if "name" in fields and payload.name is not None:
            name = payload.name
        if "status" in fields and payload.status is not None:
            status = OrganizationStatus(payload.status)
            if (
                organization.kind is OrganizationKind.OPERATOR
                and status is OrganizationStatus.SUSPENDED
            ):
                raise invalid_field("status", "L'opérateur ne peut pas être suspendu.")
        if "policy" in fields:
            patch = payload.policy.model_dump(exclude_unset=True) if payload.policy else {}
            policy = {} if payload.policy is None else merge_patch(organization.policy, patch)
            _check_publication_mode(policy)
            _check_personal_data(
                policy, operator_level=organization.kind is OrganizationKind.OPERATOR
            )
        if "siret" in fields and payload.siret != organization.siret:
            await self._check_siret_free(payload.siret, organization.id)
            await self.repository.set_siret(organization, payload.siret)
        return await self.repository.update(organization, name=name, status=status, policy=policy)

    async def _check_siret_free(self, siret: str | None, organization_id: uuid.UUID | None) -> None:
        owner = await self.repository.siret_owner(siret) if siret else None
        if owner is not None and owner.id != organization_id:
            raise Conflict(
                f"Une organisation existe déjà avec ce SIRET : « {owner.name} » ({owner.id})."
            )

    async def ensure_operator(self, name: str = OPERATOR_NAME) -> tuple[Organization, bool]:
        """Create the single operator organisation if there is none."""
        existing = await self.repository.get_operator()
        if existing is not None:
            return existing, False
        operator = Organization(
            kind=OrganizationKind.OPERATOR,
            name=name,
            slug=OPERATOR_SLUG,
            parent_id=None,
            status=OrganizationStatus.ACTIVE,
            policy={},
        )
        return await self.repository.add(operator), True


def _check_publication_mode(policy: dict[str, Any]) -> None:
    problem = publication_mode_problem(policy)
    if problem is not None:
        raise invalid_field("policy.publication_mode", problem)


def _check_personal_data(policy: dict[str, Any], *, operator_level: bool) -> None:
    problem = personal_data_problem(policy, operator_level=operator_level)
    if problem is not None:
        raise invalid_field("policy.personal_data", problem)
