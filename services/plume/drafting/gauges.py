"""plume_synthese_jobs and plume_synthese_oldest_queued_seconds: the synthèse queue, read
from the database on a timer by every process (never a query per scrape; with several
workers the freshest value wins)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from plume.drafting.repository import SyntheseJobQueue
from plume.metrics import registry
from plume.runtime.periodic import Periodic


class SyntheseBacklog(Periodic):
    def __init__(
        self, system_sessions: async_sessionmaker[AsyncSession], interval_s: float
    ) -> None:
        """`system_sessions` begin in the system's scope: the queue is every tenant's."""
        super().__init__("synthese-backlog", interval_s, self.refresh)
        self.session_factory = system_sessions

    async def refresh(self) -> None:
        async with self.session_factory() as session, session.begin():
            backlog = await SyntheseJobQueue(session).backlog()
        registry.SYNTHESE_JOBS.labels("queued").set(backlog.queued)
        registry.SYNTHESE_JOBS.labels("running").set(backlog.running)
        registry.SYNTHESE_OLDEST_QUEUED.set(backlog.oldest_queued_s)
