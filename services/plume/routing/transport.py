"""How LiteLLM reaches the providers: its aiohttp transport, strict about answers cut short.

LiteLLM's default transport (aiohttp under an httpx interface) costs about 2 ms of CPU less a
call than its httpx transport (docs/performance.md), the largest single difference between
Plume and LiteLLM's own proxy, which uses it. But as LiteLLM ships it, a body that ends
before its end (a provider dropping the connection in the middle of a stream) ends quietly,
and LiteLLM then closes the stream with a `stop` of its own making: a truncated act would
reach the secretary as if it were whole. Here the same transport raises instead, as httpx
does (`httpx.RemoteProtocolError`), which LiteLLM reports as a failed call and Plume as an
answer cut in the middle (plume.routing.router). Decision 0012.

LiteLLM's pinned version is part of this: `tests/routing/test_per_call_work.py` checks that
plain and streamed answers are read by this stream, and the cut-stream tests of
`tests/routing/test_attempts.py`, `test_fallbacks.py` and `tests/calls/test_call_outcomes.py`
fail without it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import httpx
from aiohttp.http_exceptions import TransferEncodingError
from litellm.llms.custom_httpx import aiohttp_transport

CUT_SHORT = "the provider's answer ended before its end"


class StrictResponseStream(aiohttp_transport.AiohttpResponseStream):
    """A provider's body, raising if it ends before its announced end."""

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._aiohttp_response.content.iter_chunked(self.CHUNK_SIZE):
                yield chunk
        except (aiohttp.ClientPayloadError, TransferEncodingError) as error:
            raise httpx.RemoteProtocolError(CUT_SHORT) from error
        except RuntimeError as error:
            # aiohttp's reader when the connection closes under it.
            if "Connection closed" in str(error):
                raise httpx.RemoteProtocolError(CUT_SHORT) from error
            raise
        except Exception:
            with aiohttp_transport.map_aiohttp_exceptions():
                raise


def install() -> None:
    """Every aiohttp response LiteLLM reads from now on is read by StrictResponseStream
    (LiteLLM's transport builds its stream from this module attribute, per response)."""
    aiohttp_transport.AiohttpResponseStream = StrictResponseStream  # type: ignore[misc]
