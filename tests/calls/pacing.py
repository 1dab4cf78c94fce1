"""A fake OpenAI-compatible provider whose pace the test chooses, for deadlines, keep-alives
and slow requests: `PacedProvider`, served on 127.0.0.1 like tests/support/providers.py's.

Its behaviour is chosen by the request's `model` (after LiteLLM's `openai/`):

- `pause…`: streams its first word, stays silent `pause_s`, then the rest; a plain answer
  (of `pause…` and `trickle…`) comes after `pause_s`;
- `trickle…`: streams a word every `trickle_s`, for far longer than any test waits;
- `ok…`: answers at once — unless a message asks for a long answer (contains `LONG`), which
  comes after `pause_s`: a request one tenant can make slow at will.

`calls` counts requests per model; `closed` counts streams whose client went away.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.support.servers import free_port, serve_in_thread

WORDS = ["Réponse", "donnée", "à", "son", "rythme."]
ANSWER = " ".join(WORDS)
LONG = "LONG"


class PacedProvider:
    def __init__(self, pause_s: float = 0.6, trickle_s: float = 2.0) -> None:
        self.pause_s = pause_s
        self.trickle_s = trickle_s
        self.calls: Counter[str] = Counter()
        self.closed = 0
        self.port = free_port()
        self.app = Starlette(routes=[Route("/v1/chat/completions", self.chat, methods=["POST"])])

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def chat(self, request: Request) -> Response:
        body = await request.json()
        model = str(body.get("model", ""))
        self.calls[model] += 1
        long = any(LONG in str(m.get("content", "")) for m in body["messages"])
        if body.get("stream"):
            return StreamingResponse(self._stream(model), media_type="text/event-stream")
        if model.startswith(("pause", "trickle")) or long:
            await asyncio.sleep(self.pause_s)
        return JSONResponse(
            {
                "id": "chatcmpl-paced",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": ANSWER},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
            }
        )

    async def _stream(self, model: str) -> AsyncIterator[bytes]:
        base = {"id": "chatcmpl-paced", "object": "chat.completion.chunk", "model": model}

        def event(payload: dict[str, Any]) -> bytes:
            return f"data: {json.dumps({**base, **payload})}\n\n".encode()

        def word(index: int, text: str) -> bytes:
            delta = {"content": text if index == 0 else " " + text}
            return event({"choices": [{"index": 0, "delta": delta}]})

        try:
            if model.startswith("trickle"):
                for index in range(1000):
                    yield word(index, f"mot{index}")
                    await asyncio.sleep(self.trickle_s)
            for index, text in enumerate(WORDS):
                yield word(index, text)
                if index == 0 and model.startswith("pause"):
                    await asyncio.sleep(self.pause_s)
            yield event({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
            usage = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
            yield event({"choices": [], "usage": usage})
            yield b"data: [DONE]\n\n"
        except asyncio.CancelledError:
            self.closed += 1
            raise


@contextmanager
def running_paced_provider(pause_s: float = 0.6, trickle_s: float = 2.0) -> Iterator[PacedProvider]:
    provider = PacedProvider(pause_s=pause_s, trickle_s=trickle_s)
    with serve_in_thread(provider.app, provider.port):
        yield provider
