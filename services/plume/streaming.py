"""A streamed answer that is always settled, even when its body never ran.

A StreamingResponse's generator settles the call in its `finally` — but a client that hangs
up before the first chunk is asked for leaves the generator unstarted, and an unstarted
generator has no `finally` to run. This response settles such a call itself: the
reservation is released, the usage recorded, the provider stream closed.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import anyio
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from plume.provider_calls import CallContext


class SettledStreamingResponse(StreamingResponse):
    def __init__(
        self,
        content: AsyncIterator[bytes],
        *,
        context: CallContext,
        abandon: Callable[[], Awaitable[None]],
        headers: dict[str, str],
    ) -> None:
        super().__init__(content, media_type="text/event-stream", headers=headers)
        self.context = context
        self.abandon = abandon

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):
                # Starlette never closes the body: a generator paused at a `yield` when the
                # client left settles in its own `finally`, run now rather than by the GC.
                closer = getattr(self.body_iterator, "aclose", None)
                if closer is not None:
                    with contextlib.suppress(Exception):
                        await closer()
                if not self.context.settled:
                    await self.abandon()
