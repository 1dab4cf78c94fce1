"""A stopping `plume serve`: not ready at once, then uvicorn's drain.

On SIGTERM, /readyz answers 503 from that moment. With PLUME_DRAIN_DELAY_S, the server goes
on accepting requests that long, so that a load balancer probing /readyz (HAProxy, a cloud
load balancer) takes it out of rotation before its port closes; then it stops accepting and
lets in-flight requests finish (PLUME_DRAIN_TIMEOUT_S), a stream to its last event. A second
signal stops at once. Kubernetes' preStop sleep plays the delay's part for a pod.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from types import FrameType
from typing import Any

import structlog
import uvicorn

logger = structlog.get_logger("plume.serve")

# Set once this process begins to stop: readiness fails from then on.
stopping = threading.Event()
# uvicorn's exit status when the application did not start.
STARTUP_FAILURE = 3


class DrainingServer(uvicorn.Server):
    """uvicorn's server, whose first SIGTERM is announced `delay_s` before the drain."""

    def __init__(self, config: uvicorn.Config, delay_s: float) -> None:
        super().__init__(config)
        self.delay_s = delay_s
        self._drain_at: float | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        first = not stopping.is_set()
        stopping.set()
        if first and sig == signal.SIGTERM and self.delay_s > 0:
            logger.info("stopping", drain_in_s=self.delay_s)
            self._drain_at = time.monotonic() + self.delay_s
            return
        self._drain_at = None
        super().handle_exit(sig, frame)

    async def on_tick(self, counter: int) -> bool:
        if self._drain_at is not None and time.monotonic() >= self._drain_at:
            self._drain_at = None
            super().handle_exit(signal.SIGTERM, None)
        return await super().on_tick(counter)


def serve(app: str, *, workers: int, delay_s: float, **options: Any) -> None:
    """`uvicorn.run(app, ...)`; a single worker (a pod's) runs on a DrainingServer. Several
    workers stop as uvicorn stops them (their port closes at once: no delay)."""
    if workers > 1:
        uvicorn.run(app, workers=workers, **options)
        return
    server = DrainingServer(uvicorn.Config(app, **options), delay_s)
    server.run()
    if not server.started:
        sys.exit(STARTUP_FAILURE)
