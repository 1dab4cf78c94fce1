"""Organisation payloads: what the API accepts and answers."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from plume.organizations.identifiers import normalize_insee, normalize_siren, normalize_siret
from plume.organizations.policy import EffectivePolicy, PolicyPatch


def _clean_name(value: str) -> str:
    cleaned = " ".join(value.split())
    if not cleaned:
        raise ValueError("Ne peut pas être vide.")
    return cleaned


class OrganizationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["epci", "commune"]
    name: str = Field(min_length=1, max_length=200)
    parent_id: uuid.UUID | None = None
    insee_code: str | None = Field(default=None, max_length=10)
    siren: str | None = Field(default=None, max_length=16)
    # Checked against the SIRET ProConnect sends when an agent signs in.
    siret: str | None = Field(default=None, max_length=20)
    policy: PolicyPatch | None = None

    _name = field_validator("name")(_clean_name)

    @field_validator("insee_code")
    @classmethod
    def _insee(cls, value: str | None) -> str | None:
        return normalize_insee(value) if value is not None else None

    @field_validator("siren")
    @classmethod
    def _siren(cls, value: str | None) -> str | None:
        return normalize_siren(value) if value is not None else None

    @field_validator("siret")
    @classmethod
    def _siret(cls, value: str | None) -> str | None:
        return normalize_siret(value) if value is not None else None


class OrganizationUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    status: Literal["active", "suspended"] | None = None
    # null clears it; ProConnect's `siret` claim must match it when agents sign in.
    siret: str | None = Field(default=None, max_length=20)
    policy: PolicyPatch | None = None

    @field_validator("siret")
    @classmethod
    def _siret(cls, value: str | None) -> str | None:
        return normalize_siret(value) if value is not None else None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        return _clean_name(value) if value is not None else None


class OrganizationOut(BaseModel):
    """An organisation as its own members see it (GET /v1/organization)."""

    id: uuid.UUID
    kind: Literal["operator", "epci", "commune"]
    name: str
    slug: str
    status: Literal["active", "suspended"]
    parent_id: uuid.UUID | None
    insee_code: str | None
    siren: str | None
    siret: str | None = None
    policy: EffectivePolicy = Field(description="The effective policy, inherited and narrowed")
    created_at: datetime


class AdminOrganizationOut(OrganizationOut):
    """The operator's view adds what was set at this level only."""

    own_policy: dict[str, Any] = Field(
        description="Policy keys set at this level; the others are inherited"
    )
    updated_at: datetime

    def created_details(self) -> dict[str, Any]:
        """What `organization.create` records in the new organisation's audit chain."""
        fields = {"kind", "name", "slug", "parent_id", "insee_code", "siren"}
        return self.model_dump(mode="json", include=fields)
