"""Response bodies of the audit routes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class AuditEntryOut(BaseModel):
    organization_id: uuid.UUID
    seq: int = Field(description="Position in the organisation's chain, from 1")
    occurred_at: datetime
    action: str
    actor: dict[str, Any] = Field(description="`key_id` and `role` (`system` for the CLI)")
    request_id: str | None
    client_address: str | None
    outcome: str | None
    target: dict[str, Any] | None
    details: dict[str, Any]
    prev_hash: str
    hash: str


class Verification(BaseModel):
    organization_id: uuid.UUID
    valid: bool
    checked: int = Field(description="Entries checked before the first invalid one")
    first_invalid_seq: int | None
    receipt_matches: bool | None = Field(
        default=None,
        description="With `receipt_seq` and `receipt_hash`: whether the chain still holds "
        "that hash at that position",
    )


class VerificationSummary(BaseModel):
    """The operator's verification of every chain."""

    valid: bool
    checked: int
    first_invalid_seq: int | None
    chains: list[Verification]


class Receipt(BaseModel):
    organization_id: str
    seq: int
    hash: str
    signed_at: str
    key_id: str
    algorithm: str
    signature: str = Field(
        description="Base64 Ed25519 signature of the canonical JSON of "
        "{organization_id, seq, hash, signed_at}"
    )


class PublicKey(BaseModel):
    algorithm: str
    key_id: str
    public_key: str = Field(description="Base64 of the raw 32-byte Ed25519 public key")
    pem: str
