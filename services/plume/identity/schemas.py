"""Agent and session payloads: what the API accepts and answers."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

# Enough to catch a typo; the provider proves the address at the first sign-in.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _title(value: str | None) -> str | None:
    if value is None:
        return None
    cleaned = " ".join(value.split())
    if not cleaned:
        raise ValueError("Ne peut pas être vide.")
    return cleaned


class AgentInvite(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str = Field(min_length=3, max_length=320)
    role: Literal["agent", "tenant_admin"] = "agent"
    title: str | None = Field(
        default=None,
        max_length=200,
        description="« Maire », « Secrétaire générale de mairie »: printed on the reviews",
    )

    @field_validator("email")
    @classmethod
    def _email(cls, value: str) -> str:
        value = value.strip()
        if not _EMAIL.match(value):
            raise ValueError("Adresse électronique invalide.")
        return value

    _clean_title = field_validator("title")(_title)


class AgentPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["agent", "tenant_admin"] | None = None
    title: str | None = Field(default=None, max_length=200)
    status: Literal["active", "suspended"] | None = Field(
        default=None, description="`suspended` revokes the agent's sessions at once"
    )

    _clean_title = field_validator("title")(_title)


class AgentOut(BaseModel):
    id: uuid.UUID
    organization_id: uuid.UUID
    email: str
    given_name: str | None
    usual_name: str | None
    title: str | None
    role: Literal["agent", "tenant_admin"]
    status: Literal["invited", "active", "suspended"]
    created_at: datetime
    last_login_at: datetime | None


class MeOrganization(BaseModel):
    id: uuid.UUID
    name: str
    kind: Literal["operator", "epci", "commune"]


class MeOut(BaseModel):
    """Who is calling: a signed-in agent (`kind: agent`), an OAuth2 client (`oauth_client`) or
    an API key (`api_key`); for a key or a client, `name` is its name, `email` and `title`
    null."""

    kind: Literal["agent", "oauth_client", "api_key"]
    id: uuid.UUID
    name: str
    email: str | None = None
    title: str | None = None
    role: str
    organization: MeOrganization
    acr: str | None = Field(default=None, description="The session's authentication level")


class SessionOut(BaseModel):
    id: uuid.UUID
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    acr: str | None
    user_agent: str | None
    current: bool = Field(description="The session this request was made with")
