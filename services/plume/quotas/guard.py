"""Quotas around a provider call: reserve at every level before it, settle after it.

Every drafting or chat request counts against its organisation's quotas and those of each
ancestor (EPCI, operator); it is refused if one of them would go over. The reservation is
taken in the request's first transaction and the settlement written in its last (see
plume.calls); nothing is locked while the provider works.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
from sqlalchemy.ext.asyncio import AsyncSession

from plume.credentials.auth import Principal
from plume.dates import Clock
from plume.db import driver_connection, keep_tenant_scope
from plume.errors import QuotaExceeded, RateLimited
from plume.french import plain_number
from plume.quotas.periods import window_end
from plume.quotas.repository import (
    LedgerMove,
    LedgerRepository,
    Reserved,
    reserve_in_context_on,
)
from plume.quotas.wording import amount_label, level_label, quota_label, reset_label


@dataclass(frozen=True, slots=True)
class RateLimitStatus:
    """The tightest quota after a request's reservation, for the RateLimit-* headers."""

    limit: Decimal
    remaining: Decimal
    reset_seconds: int

    def headers(self) -> dict[str, str]:
        return {
            "RateLimit-Limit": plain_number(self.limit),
            "RateLimit-Remaining": plain_number(max(self.remaining, Decimal(0))),
            "RateLimit-Reset": str(self.reset_seconds),
        }


@dataclass(frozen=True, slots=True)
class Reservation:
    """What a request holds while the provider works."""

    id: uuid.UUID
    status: RateLimitStatus


class QuotaGuard:
    def __init__(self, clock: Clock, reservation_ttl_s: int, job_reservation_ttl_s: int) -> None:
        self.clock = clock
        self.reservation_ttl = timedelta(seconds=reservation_ttl_s)
        # A synthèse in parts may run for a long time, streamed or as a job.
        self.job_reservation_ttl = timedelta(seconds=job_reservation_ttl_s)

    async def reserve_in_context(
        self,
        session: AsyncSession,
        principal: Principal,
        *,
        tokens: int,
        cost: Decimal,
        long: bool,
    ) -> Reservation | None:
        """Enter the principal's tenant context and reserve (one statement). None when no
        quota applies at any level; QuotaExceeded or RateLimited when one would go over
        (the caller rolls back: nothing is then held anywhere)."""
        keep_tenant_scope(session, principal.scope)
        driver = await driver_connection(session)
        return await self.reserve_on(driver, principal, tokens=tokens, cost=cost, long=long)

    async def reserve_on(
        self,
        driver: psycopg.AsyncConnection[Any],
        principal: Principal,
        *,
        tokens: int,
        cost: Decimal,
        long: bool,
    ) -> Reservation | None:
        """`reserve_in_context` on `driver`: in its open transaction, or as a transaction of
        its own (autocommit), committed only if the reservation fits."""
        now = self.clock.now()
        reservation_id = uuid.uuid4()
        answer = await reserve_in_context_on(
            driver,
            principal.scope,
            reservation_id=reservation_id,
            organization_id=principal.organization_id,
            now=now,
            tokens=tokens,
            cost=cost,
            expires_at=now + (self.job_reservation_ttl if long else self.reservation_ttl),
        )
        if answer is None:
            return None
        if not answer.accepted:
            raise self._refusal(principal, answer, now)
        reset = window_end(answer.period, answer.window_start)
        return Reservation(
            reservation_id,
            RateLimitStatus(
                limit=answer.limit,
                remaining=answer.remaining,
                reset_seconds=max(0, math.ceil((reset - now).total_seconds())),
            ),
        )

    def move(
        self,
        reservation_id: uuid.UUID,
        organization_id: uuid.UUID,
        *,
        charged: bool,
        tokens: int,
        cost: Decimal,
    ) -> LedgerMove:
        """The settlement of a reservation: released, or replaced by what was used."""
        if not charged:
            return LedgerMove(reservation_id)
        return LedgerMove(
            reservation_id,
            requests=1,
            tokens=tokens,
            cost=cost,
            # Where a reservation swept or lost is charged all the same.
            organization_id=organization_id,
            now=self.clock.now(),
        )

    async def keep_for_job(self, session: AsyncSession, reservation_id: uuid.UUID) -> None:
        """A synthèse accepted as a job keeps its reservation until the job settles it."""
        await LedgerRepository(session).extend(
            reservation_id, self.clock.now() + self.job_reservation_ttl
        )

    @staticmethod
    async def release_expired(session: AsyncSession, now: datetime) -> int:
        """Release the reservations of requests whose process died; returns how many. The
        session's scope must be the system's."""
        return await LedgerRepository(session).release_expired(now)

    @staticmethod
    async def release(session: AsyncSession, reservation_id: uuid.UUID) -> None:
        """Give back everything a reservation held (nothing was used)."""
        await LedgerRepository(session).settle(LedgerMove(reservation_id))

    def _refusal(self, principal: Principal, worst: Reserved, now: datetime) -> QuotaExceeded:
        """`worst`: of the quotas that refused, the one that stays shut the longest."""
        levels = {level.id: level for level in principal.chain}
        resets_at = window_end(worst.period, worst.window_start)
        retry_after = math.ceil((resets_at - now).total_seconds())
        quota = quota_label(worst.metric, worst.period, worst.limit)
        detail = f"Quota atteint : {quota} pour {level_label(levels.get(worst.organization_id))}. "
        if worst.amount > worst.limit:
            detail += (
                f"Cette demande ({amount_label(worst.metric, worst.amount)} au plus) dépasse "
                "à elle seule ce quota : réduisez-la (max_output_tokens, texte plus court) "
                "ou demandez un quota plus large. "
            )
        detail += f"Il sera rétabli {reset_label(worst.period, resets_at, now)}."
        # Only per-minute quotas refused when the one shut the longest is one of them.
        error = (
            RateLimited(detail, retry_after)
            if worst.period == "minute"
            else QuotaExceeded(detail, retry_after)
        )
        error.headers.update(
            RateLimitStatus(
                limit=worst.limit, remaining=Decimal(0), reset_seconds=max(retry_after, 1)
            ).headers()
        )
        return error
