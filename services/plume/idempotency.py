"""Idempotency-Key on POST /v1/drafts and POST /v1/chat/completions.

Scoped to the organisation and kept 24 h. The key is claimed in the transaction that
reserves quota (so a refused request leaves no claim), and the answer is stored in the
settlement transaction (so a request charged is a request whose answer can be replayed).
A retry with the same key and body gets the first answer, with `Idempotency-Replayed:
true`; while the first is still running, 409; with another body, 422. A request that
failed or whose client went away frees its key: retrying it runs it again.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any

from fastapi import Request
from sqlalchemy import delete, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from plume.errors import FieldError, IdempotencyInProgress, IdempotencyMismatch, InvalidRequest
from plume.models import IdempotencyKey
from plume.provider_calls import CallContext, CallHook, CallOutcome, StoredResponse
from plume.quotas.periods import Clock

KEEP_FOR = timedelta(hours=24)
HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255

# Claims the key, or takes over one that expired or whose request died unanswered.
_CLAIM = text("""
INSERT INTO idempotency_keys AS k
    (organization_id, key, request_hash, locked_until, expires_at, created_at)
VALUES (:organization_id, :key, :request_hash, :locked_until, :expires_at, :now)
ON CONFLICT (organization_id, key) DO UPDATE
    SET request_hash = excluded.request_hash, status_code = NULL, content_type = NULL,
        body = NULL, headers = NULL, locked_until = excluded.locked_until,
        expires_at = excluded.expires_at, created_at = excluded.created_at
    WHERE k.expires_at <= :now
       OR (k.status_code IS NULL AND k.locked_until <= :now
           AND k.request_hash = excluded.request_hash)
RETURNING true
""")


class IdempotentReplay(Exception):
    """Not an error: the stored first answer, to send again."""

    def __init__(self, response: StoredResponse) -> None:
        super().__init__("idempotent replay")
        self.response = response


async def request_key(request: Request) -> tuple[str | None, str | None]:
    """The request's Idempotency-Key, validated, and the hash of what it covers."""
    key = request.headers.get(HEADER)
    if key is None:
        return None, None
    if not 1 <= len(key) <= MAX_KEY_LENGTH or not key.isascii() or not key.isprintable():
        message = (
            f"L'en-tête Idempotency-Key doit contenir de 1 à {MAX_KEY_LENGTH} caractères "
            "ASCII imprimables (un UUID par exemple)."
        )
        raise InvalidRequest(message, errors=[FieldError(HEADER, message)])
    digest = hashlib.sha256()
    digest.update(f"{request.method} {request.url.path}\n".encode())
    digest.update(await request.body())
    return key, digest.hexdigest()


class IdempotencyHook(CallHook):
    """A CallHook; registered first, so that a replay reserves nothing."""

    def __init__(self, clock: Clock, lock_s: int, long_lock_s: int) -> None:
        self.clock = clock
        self.lock = timedelta(seconds=lock_s)
        # A synthèse in parts may legitimately run for hours.
        self.long_lock = timedelta(seconds=long_lock_s)

    async def before_call(
        self, session: AsyncSession, context: CallContext, opened: list[tuple[Any, ...]] | None
    ) -> None:
        if context.idempotency_key is None or context.request_hash is None:
            return
        now = self.clock.now()
        organization_id = context.principal.organization_id
        claimed = await session.scalar(
            _CLAIM,
            {
                "organization_id": organization_id,
                "key": context.idempotency_key,
                "request_hash": context.request_hash,
                "locked_until": now
                + (
                    self.long_lock if context.estimate and context.estimate.calls > 1 else self.lock
                ),
                "expires_at": now + KEEP_FOR,
                "now": now,
            },
        )
        if claimed:
            return
        existing = await session.scalar(
            select(IdempotencyKey).where(
                IdempotencyKey.organization_id == organization_id,
                IdempotencyKey.key == context.idempotency_key,
            )
        )
        if existing is None:  # expired and swept between the two statements: rare
            raise IdempotencyInProgress()
        if existing.request_hash != context.request_hash:
            raise IdempotencyMismatch()
        if existing.status_code is None or existing.body is None:
            raise IdempotencyInProgress()
        raise IdempotentReplay(
            StoredResponse(
                status_code=existing.status_code,
                content_type=existing.content_type or "application/json",
                body=existing.body,
                headers=dict(existing.headers or {}),
            )
        )

    async def after_call(
        self, session: AsyncSession, context: CallContext, outcome: CallOutcome
    ) -> None:
        if context.idempotency_key is None or context.request_hash is None:
            return
        where = (
            IdempotencyKey.organization_id == context.principal.organization_id,
            IdempotencyKey.key == context.idempotency_key,
            IdempotencyKey.request_hash == context.request_hash,
            IdempotencyKey.status_code.is_(None),
        )
        response = context.response
        if outcome.outcome in ("success", "deferred") and response is not None:
            await session.execute(
                update(IdempotencyKey)
                .where(*where)
                .values(
                    status_code=response.status_code,
                    content_type=response.content_type,
                    body=response.body,
                    headers=response.headers,
                )
            )
        else:
            await session.execute(delete(IdempotencyKey).where(*where))


async def forget_expired(session: AsyncSession, now: datetime) -> None:
    await session.execute(delete(IdempotencyKey).where(IdempotencyKey.expires_at <= now))
