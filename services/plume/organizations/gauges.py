"""plume_organization_info: one series per organisation (slug, name, kind, parent's slug),
for dashboards to show names. Read from the database when the process starts, on a timer
(changes made by the command line or by another process), and at once after the operator's
API creates or changes an organisation. No query per scrape."""

from __future__ import annotations

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from plume.db import TenantScope
from plume.metrics import registry
from plume.organizations.service import OrganizationService
from plume.runtime.periodic import Periodic

logger = structlog.get_logger("plume.metrics")

Labels = tuple[str, str, str, str]


class OrganizationInfo(Periodic):
    def __init__(
        self, system_sessions: async_sessionmaker[AsyncSession], interval_s: float
    ) -> None:
        """`system_sessions` begin in the system's scope: every organisation is listed."""
        super().__init__("organization-info", interval_s, self.refresh)
        self.session_factory = system_sessions
        self._shown: set[Labels] = set()

    async def refresh(self) -> None:
        async with self.session_factory() as session, session.begin():
            rows = await OrganizationService(session, TenantScope.everything()).directory()
        self.show({(slug, name, kind, parent or "") for slug, name, kind, parent in rows})

    async def refresh_after_change(self) -> None:
        """After an organisation was created or changed (and committed): the timer would
        show it too, later. A failure is the timer's to mend."""
        try:
            await self.refresh()
        except Exception:
            logger.warning("organization_info_not_refreshed", exc_info=True)

    def show(self, current: set[Labels]) -> None:
        """Only what changed since this process's last refresh is written. With several
        workers the most recent value of a series wins: a worker that retired a series
        which holds again (a name given back) shows it again at its own next refresh."""
        for labels in current - self._shown:
            registry.ORGANIZATION_INFO.labels(*labels).set(1)
        for gone in self._shown - current:  # renamed (the old name), or gone
            registry.retire(registry.ORGANIZATION_INFO, *gone)
        self._shown = current
