"""A streamed answer that always settles its call, even when its body never ran.

Starlette runs a StreamingResponse's body and never closes it: a generator paused at a
`yield` when the client left is closed here, so that its own clean-up runs now rather than
by the garbage collector; and a client that hangs up before the first chunk is asked for
leaves the body unstarted. Either way, once the response is over, its call is closed: a call
the body settled stays as it is, any other is settled as abandoned by its client.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import anyio
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send


class SettledStreamingResponse(StreamingResponse):
    def __init__(
        self,
        content: AsyncIterator[bytes],
        *,
        close: Callable[[], Awaitable[None]],
        headers: dict[str, str],
    ) -> None:
        super().__init__(
            content,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no", **headers},
        )
        self.close = close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):
                closer = getattr(self.body_iterator, "aclose", None)
                if closer is not None:
                    with contextlib.suppress(Exception):
                        await closer()
                await self.close()
