"""OAuth2 payloads: a client's secret appears in exactly one answer, its creation's; the
token endpoint answers RFC 6749's shapes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class OAuthClientCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, description="What the client is for")
    role: Literal["tenant_admin", "agent"]

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        cleaned = " ".join(value.split())
        if not cleaned:
            raise ValueError("Ne peut pas être vide.")
        return cleaned


class OAuthClientOut(BaseModel):
    id: uuid.UUID
    organization_id: uuid.UUID
    client_id: str = Field(description="The public identifier (`plc_…`), the tokens' `sub`")
    name: str
    role: Literal["tenant_admin", "agent"]
    status: Literal["active", "revoked"]
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None = Field(description="Updated at most once a minute")
    created_by: uuid.UUID | None = Field(description="Id of the key that created this client")


class OAuthClientCreated(OAuthClientOut):
    client_secret: str = Field(
        description="The secret (`plcs_…`), shown this once: it is stored only as an HMAC"
    )


class TokenResponse(BaseModel):
    """RFC 6749, section 5.1."""

    access_token: str = Field(description="A JWT (RFC 9068), signed with ES256")
    token_type: Literal["Bearer"]
    expires_in: int = Field(description="Seconds")
    scope: str = Field(description="The client's role: `agent` or `tenant_admin`")


class OAuthError(BaseModel):
    """RFC 6749, section 5.2: the token endpoint's errors."""

    error: Literal[
        "invalid_request",
        "invalid_client",
        "invalid_grant",
        "unauthorized_client",
        "unsupported_grant_type",
        "invalid_scope",
    ]
    error_description: str = Field(description="French, in ASCII (RFC 6749)")
