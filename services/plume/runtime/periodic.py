"""A task every API process runs on a timer (sweeps, gauge refreshes)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import structlog

logger = structlog.get_logger("plume.periodic")


class Periodic:
    """Runs `step` every `interval_s` seconds until stopped (the first time after
    `first_after_s`); a failing step is logged and tried again at the next tick, never allowed
    to end the loop."""

    def __init__(
        self,
        name: str,
        interval_s: float,
        step: Callable[[], Awaitable[object]],
        first_after_s: float = 0.0,
    ) -> None:
        self.name = name
        self.interval_s = interval_s
        self.step = step
        self.first_after_s = first_after_s
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"plume-{self.name}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        if self.first_after_s:
            await asyncio.sleep(self.first_after_s)
        while True:
            try:
                await self.step()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.warning("periodic_step_failed", task=self.name, exc_info=True)
            await asyncio.sleep(self.interval_s)
