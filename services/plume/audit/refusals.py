"""`access.denied`: an authenticated caller refused a resource (403, or 404 for what is not
theirs), recorded without letting one tenant fill its chain with refusals.

A process writes at most one entry a minute for each kind of refusal — the same
organisation, code and route template. The refusals in between are counted, not written:
the next entry of the same kind carries their number (`details.suppressed`), and when none
comes once the minute is over, a timer writes the last of them, carrying the others. So every
refusal is accounted for (the entries plus their `suppressed` numbers), while a flood costs
a transaction a minute instead of one per request. Every refusal is counted in
plume_refusals_total all the same (plume.web.middleware).

An entry is written in a transaction of its own: the refused request's has rolled back.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from plume.audit.trail import Actor, NewEntry, actor_of, append, entry
from plume.credentials.auth import Principal
from plume.dates import Clock
from plume.db import TenantScope, enter_tenant_context
from plume.hashing import digest
from plume.runtime.periodic import Periodic

logger = structlog.get_logger("plume.audit")

# One entry per kind of refusal and process in this time, at most.
WINDOW = timedelta(minutes=1)
# How often the windows that ended are looked at (their last refusal written, if any).
FLUSH_INTERVAL_S = 15.0

# A refused path's parameters are the caller's text: the entry keeps each one as it is up to
# this length, else its digest (an audit entry is kept for ever).
MAX_PARAM_LENGTH = 64


def bounded_param(value: str) -> str | dict[str, Any]:
    return value if len(value) <= MAX_PARAM_LENGTH else digest(value)


@dataclass(frozen=True, slots=True)
class Refusal:
    organization_id: uuid.UUID
    scope: TenantScope
    actor: Actor
    status: int
    code: str
    route: str  # method and template: "GET /v1/drafts/{draft_id}"
    path_params: dict[str, Any]
    occurred_at: datetime

    @property
    def kind(self) -> tuple[uuid.UUID, str, str]:
        return self.organization_id, self.code, self.route


@dataclass(slots=True)
class _Window:
    opened: datetime
    suppressed: int = 0
    last: Refusal | None = None


def _entry_of(refusal: Refusal, suppressed: int) -> NewEntry:
    details: dict[str, Any] = {
        "status": refusal.status,
        "code": refusal.code,
        "path_params": refusal.path_params,
    }
    if suppressed:
        details["suppressed"] = suppressed
    return entry(
        organization_id=refusal.organization_id,
        action="access.denied",
        actor=refusal.actor,
        outcome="refused",
        target=("route", refusal.route),
        details=details,
        occurred_at=refusal.occurred_at,
    )


class RefusalLog(Periodic):
    """This process's refusal windows, and the timer that closes them."""

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        clock: Clock,
        interval_s: float = FLUSH_INTERVAL_S,
    ) -> None:
        super().__init__("refusal-log", interval_s, self.flush)
        self.session_factory = session_factory
        self.clock = clock
        self._windows: dict[tuple[uuid.UUID, str, str], _Window] = {}

    def admit(self, refusal: Refusal) -> int | None:
        """None if `refusal` is only counted; else the number of refusals of its kind its
        entry carries (those not written since the previous entry)."""
        now = self.clock.now()
        window = self._windows.get(refusal.kind)
        if window is not None and now < window.opened + WINDOW:
            window.suppressed += 1
            window.last = refusal
            return None
        self._windows[refusal.kind] = _Window(opened=now)
        return window.suppressed if window is not None else 0

    async def record(self, refusal: Refusal) -> None:
        """Best effort: a refusal whose entry cannot be written is logged."""
        carried = self.admit(refusal)
        if carried is None:
            return
        try:
            async with self.session_factory() as session, session.begin():
                await enter_tenant_context(session, refusal.scope)
                await append(session, _entry_of(refusal, carried))
        except Exception:
            logger.exception("audit_refusal_not_recorded", code=refusal.code, carried=carried)

    async def flush(self, *, everything: bool = False) -> None:
        """Close the windows whose minute is over (all of them: `everything`, when the
        process stops), writing the last refusal of each that had some not written."""
        now = self.clock.now()
        due: list[tuple[Refusal, int]] = []
        for kind, window in list(self._windows.items()):
            if everything or now >= window.opened + WINDOW:
                del self._windows[kind]
                if window.last is not None:
                    due.append((window.last, window.suppressed - 1))
        if not due:
            return
        try:
            async with self.session_factory() as session, session.begin():
                await enter_tenant_context(session, TenantScope.everything())
                for refusal, carried in due:
                    await append(session, _entry_of(refusal, carried))
        except Exception:
            lost = sum(carried + 1 for _, carried in due)
            logger.exception("audit_refusals_not_recorded", refusals=lost)

    async def stop(self) -> None:
        await super().stop()
        await self.flush(everything=True)


async def record_refusal(request: Request, status: int, code: str) -> None:
    """`access.denied` for an authenticated caller refused a resource."""
    principal: Principal | None = getattr(request.state, "principal", None)
    log: RefusalLog | None = getattr(request.app.state, "refusals", None)
    if principal is None or log is None:
        return
    route = request.scope.get("route")
    template = getattr(route, "path", None) or "unknown"
    await log.record(
        Refusal(
            organization_id=principal.organization_id,
            scope=principal.scope,
            actor=actor_of(request, principal),
            status=status,
            code=code,
            route=f"{request.method} {template}",
            path_params={k: bounded_param(str(v)) for k, v in request.path_params.items()},
            occurred_at=datetime.now(UTC),
        )
    )
