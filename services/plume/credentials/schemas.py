"""API key payloads. A secret appears in exactly one answer: the creation's."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, description="What the key is for")
    role: Literal["tenant_admin", "agent"]
    expires_at: AwareDatetime | None = Field(
        default=None, description="RFC 3339 with offset; the key stops working then"
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        cleaned = " ".join(value.split())
        if not cleaned:
            raise ValueError("Ne peut pas être vide.")
        return cleaned


class ApiKeyOut(BaseModel):
    id: uuid.UUID
    organization_id: uuid.UUID
    name: str
    role: Literal["operator_admin", "tenant_admin", "agent"]
    prefix: str = Field(description="The key's first characters, to recognise it")
    status: Literal["active", "expired", "revoked"]
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None = Field(description="Updated at most once a minute")
    created_by: uuid.UUID | None = Field(description="Id of the key that created this one")


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="The secret, shown this once: it is stored only as an HMAC")
