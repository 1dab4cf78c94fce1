"""What the API-key tests share: reading a key's stored columns, and the commune they act
in."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from plume.models import ApiKey, Organization
from tests.support.factories import Key


def hmac_sha256(secret: str, key: str) -> str:
    return hmac.new(secret.encode(), key.encode(), hashlib.sha256).hexdigest()


async def key_row(db: AsyncSession, key_id: str | uuid.UUID) -> Any:
    """The stored columns, read afresh from the database (not from the identity map)."""
    statement = select(
        ApiKey.secret_hash,
        ApiKey.secret_version,
        ApiKey.prefix,
        ApiKey.revoked_at,
        ApiKey.expires_at,
        ApiKey.last_used_at,
    ).where(ApiKey.id == uuid.UUID(str(key_id)))
    return (await db.execute(statement)).one()


async def count_keys(db: AsyncSession) -> int:
    return int(await db.scalar(select(func.count()).select_from(ApiKey)) or 0)


def future(hours: int = 1) -> str:
    return (datetime.now(UTC) + timedelta(hours=hours)).isoformat()


@dataclass
class Tenant:
    commune: Organization
    admin: Key
    agent: Key
    operator: Key
