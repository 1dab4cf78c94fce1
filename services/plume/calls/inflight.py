"""What a stopping process waits for before it disposes of its engine: the provider calls
entered and not settled, and the settlements under way (`ProviderCalls.drain`)."""

from __future__ import annotations

import asyncio

import anyio
import structlog

logger = structlog.get_logger("plume.calls")


class InFlight:
    """Calls entered and not settled, settlements under way."""

    def __init__(self) -> None:
        self._in_flight: set[object] = set()
        self._idle = asyncio.Event()
        self._idle.set()

    def track(self, item: object) -> None:
        self._in_flight.add(item)
        self._idle.clear()

    def untrack(self, item: object) -> None:
        self._in_flight.discard(item)
        if not self._in_flight:
            self._idle.set()

    async def drain(self, timeout_s: float) -> int:
        """Wait, at most `timeout_s`, until every call entered is settled and every
        settlement committed (a stopping process, whose requests settle as they end);
        returns how many are left to the sweep."""
        with anyio.move_on_after(timeout_s):
            await self._idle.wait()
        if self._in_flight:
            logger.warning("provider_calls_not_settled_at_stop", calls=len(self._in_flight))
        return len(self._in_flight)
