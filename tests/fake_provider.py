"""A local OpenAI-compatible provider for tests and benchmarks, on 127.0.0.1.

Its behaviour is chosen by the request's `model` (the part after LiteLLM's `openai/`):
`ok…` answers normally (plain or streamed), `e500` fails with 500, `e429` with 429 and
Retry-After, `slow` answers after `slow_seconds`, `notjson` answers 200 with a body that is
not JSON, `cut` starts a stream and drops the connection, `refuse` refuses the content.
Every call is counted per model.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

ANSWER = "Bonjour, je suis un modèle de test."


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class FakeProvider:
    def __init__(self, slow_seconds: float = 3.0) -> None:
        self.calls: Counter[str] = Counter()
        self.slow_seconds = slow_seconds
        self.disconnects = 0
        self.port = free_port()
        self.app = Starlette(
            routes=[
                Route("/v1/chat/completions", self.chat, methods=["POST"]),
                Route("/v1/models", self.models, methods=["GET"]),
            ]
        )

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def models(self, request: Request) -> Response:
        return JSONResponse({"object": "list", "data": []})

    async def chat(self, request: Request) -> Response:
        body = await request.json()
        model = str(body.get("model", ""))
        self.calls[model] += 1
        if model == "e500":
            return JSONResponse({"error": {"message": "boom", "type": "server_error"}}, 500)
        if model == "e429":
            return JSONResponse(
                {"error": {"message": "slow down", "type": "rate_limit"}},
                429,
                headers={"Retry-After": "1"},
            )
        if model == "slow":
            await asyncio.sleep(self.slow_seconds)
        if model == "notjson":
            return Response("<html>gateway error</html>", 200, media_type="application/json")
        if model == "refuse":
            return JSONResponse(
                {
                    "error": {
                        "message": "The content was refused by the safety system.",
                        "type": "invalid_request_error",
                        "code": "content_policy_violation",
                    }
                },
                400,
            )
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in body["messages"])
        words = ANSWER.split(" ")
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return StreamingResponse(
                self._stream(model, words, prompt_tokens, include_usage, cut=model == "cut"),
                media_type="text/event-stream",
            )
        return JSONResponse(
            {
                "id": "chatcmpl-fake",
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
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": len(words),
                    "total_tokens": prompt_tokens + len(words),
                },
            }
        )

    async def _stream(
        self, model: str, words: list[str], prompt_tokens: int, include_usage: bool, cut: bool
    ) -> AsyncIterator[bytes]:
        def event(payload: dict[str, object]) -> bytes:
            return f"data: {json.dumps(payload)}\n\n".encode()

        base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "model": model}
        try:
            for index, word in enumerate(words):
                delta: dict[str, str] = {"content": word if index == 0 else " " + word}
                if index == 0:
                    delta["role"] = "assistant"
                yield event({**base, "choices": [{"index": 0, "delta": delta}]})
                await asyncio.sleep(0.01 if model != "okfast" else 0)
                if cut and index == 1:
                    raise ConnectionResetError("cut")
            yield event({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
            if include_usage:
                usage = {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": len(words),
                    "total_tokens": prompt_tokens + len(words),
                }
                yield event({**base, "choices": [], "usage": usage})
            yield b"data: [DONE]\n\n"
        except asyncio.CancelledError:
            self.disconnects += 1
            raise


@contextmanager
def running_fake_provider(slow_seconds: float = 3.0) -> Iterator[FakeProvider]:
    """Serve a FakeProvider from a background thread for the duration of the block."""
    provider = FakeProvider(slow_seconds=slow_seconds)
    config = uvicorn.Config(
        provider.app, host="127.0.0.1", port=provider.port, log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("fake provider did not start")
        time.sleep(0.02)
    try:
        yield provider
    finally:
        server.should_exit = True
        thread.join(timeout=5)


def main() -> None:
    """Serve a FakeProvider in this process: `python -m tests.fake_provider PORT`."""
    import sys

    provider = FakeProvider()
    port = int(sys.argv[1]) if len(sys.argv) > 1 else provider.port
    uvicorn.run(provider.app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")


if __name__ == "__main__":
    main()
