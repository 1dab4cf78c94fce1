"""A streamed answer that always settles its call, even when its body never ran, and that
stays alive through long silences.

Starlette runs a StreamingResponse's body and never closes it: a generator paused at a
`yield` when the client left is closed here, so that its own clean-up runs now rather than
by the garbage collector; and a client that hangs up before the first chunk is asked for
leaves the body unstarted. Either way, once the response is over, its call is closed: a call
the body settled stays as it is, any other is settled as abandoned by its client.

While the body is silent (a provider thinking, a synthèse's next part), a comment line
(`: keep-alive`) is sent every `keepalive_s`, so that a proxy's idle timeout never cuts a
long answer. Server-Sent Events clients, OpenAI's included, ignore comment lines; they are
sent beside the body, never through it, so they are not part of the transcript a retry of
the Idempotency-Key replays.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import anyio
from starlette.responses import StreamingResponse
from starlette.types import Message, Receive, Scope, Send

KEEP_ALIVE = b": keep-alive\n\n"

T = TypeVar("T")


async def close_quietly(deltas: object) -> None:
    """Close a provider's stream (if any) whose reader may not have: errors are moot now."""
    closer = getattr(deltas, "aclose", None)
    if closer is not None:
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await closer()


async def within(
    items: AsyncIterator[T], deadline: float, expired: Callable[[], Exception]
) -> AsyncIterator[T]:
    """`items` until `deadline` (anyio's clock), then `expired()` is raised: each wait for
    the next item is bounded by what is left, so a provider trickling a byte a minute ends
    too. The wait is cancelled within its own step, never across a `yield`; `items` is
    closed however this ends."""
    try:
        while True:
            with anyio.CancelScope(deadline=deadline) as bounded:
                try:
                    item = await anext(items)
                except StopAsyncIteration:
                    return
            if bounded.cancelled_caught:
                raise expired()
            yield item
    finally:
        closer = getattr(items, "aclose", None)
        if closer is not None:
            with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
                await closer()


class SettledStreamingResponse(StreamingResponse):
    def __init__(
        self,
        content: AsyncIterator[bytes],
        *,
        close: Callable[[], Awaitable[None]],
        headers: dict[str, str],
        keepalive_s: float | None = None,
    ) -> None:
        super().__init__(
            content,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no", **headers},
        )
        self.close = close
        self.keepalive_s = keepalive_s

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

    async def stream_response(self, send: Send) -> None:
        """The body, as Starlette sends it, with a keep-alive beside it. The body stays in
        this task (its cancellation, its shielded settlement are the response's); the
        keep-alive is a task of its own, whose sends never interleave with the body's."""
        if self.keepalive_s is None:
            await super().stream_response(send)
            return
        line = _Line(send, self.keepalive_s)
        ticker = asyncio.ensure_future(line.keep_alive())
        try:
            await super().stream_response(line.send)
        finally:
            ticker.cancel()
            with anyio.CancelScope(shield=True), contextlib.suppress(BaseException):
                await asyncio.wait({ticker})


class _Line:
    """The response's `send`, shared by the body and the keep-alive: one message at a
    time, and nothing once the last body message has gone."""

    def __init__(self, send: Send, interval: float) -> None:
        self._send = send
        self.interval = interval
        self._lock = asyncio.Lock()
        self._last = anyio.current_time()
        self._started = False
        self._ended = False

    async def send(self, message: Message) -> None:
        async with self._lock:
            await self._send(message)
            self._last = anyio.current_time()
            if message["type"] == "http.response.start":
                self._started = True
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                self._ended = True

    async def keep_alive(self) -> None:
        while True:
            due = self._last + self.interval - anyio.current_time()
            await anyio.sleep(due if due > 0 else self.interval)
            async with self._lock:
                if self._ended:
                    return
                if self._started and anyio.current_time() - self._last >= self.interval:
                    await self._send(
                        {"type": "http.response.body", "body": KEEP_ALIVE, "more_body": True}
                    )
                    self._last = anyio.current_time()
