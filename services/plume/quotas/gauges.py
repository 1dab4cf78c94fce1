"""plume_quota_used_ratio, refreshed from the database on a timer (never a query per
scrape). Every worker refreshes; the gauge's multiprocess mode keeps the freshest value of
the live workers rather than adding them up."""

from __future__ import annotations

import contextlib
import os

from prometheus_client import multiprocess
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from plume.dates import Clock
from plume.db import TenantScope, enter_tenant_context
from plume.metrics import registry
from plume.quotas.repository import QuotaRepository
from plume.runtime.periodic import Periodic


class QuotaGauges(Periodic):
    def __init__(
        self, session_factory: async_sessionmaker[AsyncSession], clock: Clock, interval_s: float
    ) -> None:
        super().__init__("quota-gauges", interval_s, self.refresh)
        self.session_factory = session_factory
        self.clock = clock
        self._shown: set[tuple[str, str, str]] = set()

    async def stop(self) -> None:
        await super().stop()
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            # This worker's gauge values stop counting as live.
            multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]

    async def refresh(self) -> None:
        async with self.session_factory() as session, session.begin():
            await enter_tenant_context(session, TenantScope.everything())
            ratios = await QuotaRepository(session).every_ratio(self.clock.now())
        shown: set[tuple[str, str, str]] = set()
        for slug, metric, period, ratio in ratios:
            registry.QUOTA_USED_RATIO.labels(slug, metric, period).set(float(ratio))
            shown.add((slug, metric, period))
        for gone in self._shown - shown:
            with contextlib.suppress(KeyError):
                registry.QUOTA_USED_RATIO.remove(*gone)
        self._shown = shown
