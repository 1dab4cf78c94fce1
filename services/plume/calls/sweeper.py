"""What requests that died leave behind: the reservations of requests whose process died
are released, and expired Idempotency-Keys forgotten.

Every API process runs one; `FOR UPDATE SKIP LOCKED` keeps two sweepers off the same rows.
"""

from __future__ import annotations

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from plume.calls.repository import IdempotencyRepository
from plume.dates import Clock
from plume.db import TenantScope, enter_tenant_context
from plume.quotas.guard import QuotaGuard
from plume.runtime.periodic import Periodic

logger = structlog.get_logger("plume.quotas")


class Sweeper(Periodic):
    def __init__(
        self, session_factory: async_sessionmaker[AsyncSession], clock: Clock, interval_s: float
    ) -> None:
        super().__init__("quota-sweeper", interval_s, self.run_once)
        self.session_factory = session_factory
        self.clock = clock

    async def run_once(self) -> int:
        """One sweep; returns how many reservations were released."""
        now = self.clock.now()
        async with self.session_factory() as session, session.begin():
            await enter_tenant_context(session, TenantScope.everything())
            released = await QuotaGuard.release_expired(session, now)
            await IdempotencyRepository(session).forget_expired(now)
        if released:
            logger.warning("quota_reservations_expired", released=released)
        return released
