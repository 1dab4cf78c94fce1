"""Local OpenAI-compatible providers for tests and benchmarks, on 127.0.0.1, and the routing
files that point at them.

`FakeProvider`'s behaviour is chosen by the request's `model` (the part after LiteLLM's
`openai/`): `ok…` answers normally (plain or streamed), `oklong` streams 36 chunks at once,
`ok50ms` answers after 50 ms (the benchmarks' realistic provider), `e500` fails with 500,
`e429` with 429 and Retry-After, `slow` answers after `slow_seconds`, `notjson` answers 200
with a body that is not JSON, `cut` starts a stream and drops the connection, `refuse`
refuses the content. Every call is counted per model. `RecordingProvider` also records what
it receives and streams a long `drip…` answer a client can hang up in the middle of.

`python -m tests.support.providers PORT` serves a FakeProvider in its own process.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import uvicorn
import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.support.servers import free_port, serve_in_thread

if TYPE_CHECKING:
    # Imported where used: `python -m tests.support.providers` needs neither Plume nor
    # LiteLLM, and starts in a fraction of the time.
    from plume.routing.router import ProviderRouter

ANSWER = "Bonjour, je suis un modèle de test."

# How long the `slow` model takes to answer: well past the 0.4 s timeout of the routing
# tests' slow deployments. Nobody waits for the answer, but the provider's server, shared by
# the session, waits for it before it stops.
SLOW_SECONDS = 1.5
# `oklong`'s stream: 34 words, the end and the usage: 36 chunks (the performance issue's case).
LONG_WORDS = 34

# --------------------------------------------------------------------------------------
# The fake provider
# --------------------------------------------------------------------------------------


class FakeProvider:
    def __init__(self, slow_seconds: float = SLOW_SECONDS) -> None:
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
        if model == "ok50ms":
            await asyncio.sleep(0.05)
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
        if model == "oklong":
            words = [f"mot{index}" for index in range(LONG_WORDS)]
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
                await asyncio.sleep(0.01 if model not in ("okfast", "oklong") else 0)
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
def running_fake_provider(slow_seconds: float = SLOW_SECONDS) -> Iterator[FakeProvider]:
    """Serve a FakeProvider from a background thread for the duration of the block."""
    provider = FakeProvider(slow_seconds=slow_seconds)
    with serve_in_thread(provider.app, provider.port):
        yield provider


# --------------------------------------------------------------------------------------
# The fake provider, recording requests, with a long "drip" stream
# --------------------------------------------------------------------------------------

# Four seconds of stream, which no test waits for: the client hangs up after three chunks,
# well inside it, and the pace is what the check "nothing more is sent after the hang-up"
# counts in (tests/chat/test_openai_client.py).
DRIP_WORDS = 200
DRIP_DELAY_S = 0.02


@dataclass(frozen=True)
class Received:
    body: dict[str, Any]
    authorization: str | None


class RecordingProvider(FakeProvider):
    """The tests' fake provider, plus: every request's body and Authorization header are
    recorded, and a model named `drip…` streams DRIP_WORDS words DRIP_DELAY_S apart (about
    four seconds), long enough to hang up in the middle; `drip_sent` counts its chunks."""

    def __init__(self, slow_seconds: float = SLOW_SECONDS) -> None:
        super().__init__(slow_seconds=slow_seconds)
        self.received: list[Received] = []
        self.drip_sent = 0
        self.drips_finished = 0

    def bodies(self, model: str) -> list[dict[str, Any]]:
        return [r.body for r in self.received if r.body.get("model") == model]

    async def chat(self, request: Request) -> Response:
        body = await request.json()  # Starlette keeps the body for the parent's own read
        self.received.append(Received(body, request.headers.get("authorization")))
        model = str(body.get("model", ""))
        if model.startswith("drip") and body.get("stream"):
            self.calls[model] += 1
            return StreamingResponse(self._drip(model), media_type="text/event-stream")
        return await super().chat(request)

    async def _drip(self, model: str) -> AsyncIterator[bytes]:
        base = {"id": "chatcmpl-drip", "object": "chat.completion.chunk", "model": model}
        try:
            for index in range(DRIP_WORDS):
                delta = {"content": f"mot{index} "}
                payload = {**base, "choices": [{"index": 0, "delta": delta}]}
                yield f"data: {json.dumps(payload)}\n\n".encode()
                self.drip_sent += 1
                await asyncio.sleep(DRIP_DELAY_S)
            done = {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
            yield f"data: {json.dumps(done)}\n\n".encode()
            yield b"data: [DONE]\n\n"
            self.drips_finished += 1
        except asyncio.CancelledError:
            self.disconnects += 1
            raise


@contextmanager
def running_recording_provider(
    slow_seconds: float = SLOW_SECONDS,
) -> Iterator[RecordingProvider]:
    provider = RecordingProvider(slow_seconds=slow_seconds)
    with serve_in_thread(provider.app, provider.port):
        yield provider


def dead_api_base() -> str:
    """An address where nothing listens: connections are refused."""
    return f"http://127.0.0.1:{free_port()}/v1"


# --------------------------------------------------------------------------------------
# Routing files
# --------------------------------------------------------------------------------------


def deployment(
    model: str,
    api_base: str,
    *,
    hosting: str = "fr",
    provider: str | None = None,
    timeout_s: float = 1,
    price: tuple[float, float] = (1, 2),
    **extra: Any,
) -> dict[str, Any]:
    """A deployment of the fake provider; `model` is its mode (ok…, e500, e429, slow…)."""
    entry: dict[str, Any] = {
        "model": model if "/" in model else f"openai/{model}",
        "api_base": api_base,
        "hosting": hosting,
        "price_per_million_tokens": {"input": price[0], "output": price[1]},
        "timeout_s": timeout_s,
    }
    if provider is not None:
        entry["provider"] = provider
    entry.update(extra)
    return entry


def offline(hosting: str = "fr") -> dict[str, Any]:
    return {
        "model": "plume_offline/offline",
        "provider": "offline",
        "hosting": hosting,
        "price_per_million_tokens": {"input": 0, "output": 0},
    }


def group(
    name: str,
    *deployments: dict[str, Any],
    fallbacks: tuple[str, ...] = (),
    default: bool = False,
    **extra: Any,
) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": name}
    if default:
        entry["default"] = True
    if fallbacks:
        entry["fallbacks"] = list(fallbacks)
    entry.update(extra)
    entry["deployments"] = list(deployments)
    return entry


def routing_yaml(*groups: dict[str, Any], num_retries: int = 0, **top: Any) -> str:
    """A routing file's text; no retries unless asked, so failures are quick."""
    return yaml.safe_dump(
        {"num_retries": num_retries, **top, "model_groups": list(groups)},
        sort_keys=False,
        allow_unicode=True,
    )


def router_for(
    *groups: dict[str, Any], environ: dict[str, str] | None = None, **top: Any
) -> ProviderRouter:
    from plume.routing.config import parse_routing
    from plume.routing.router import ProviderRouter

    text = routing_yaml(*groups, **top)
    return ProviderRouter(
        parse_routing(text, "test.yaml"), environ={} if environ is None else environ
    )


def unreachable_router() -> ProviderRouter:
    """A default group whose only provider refuses connections: every call fails (502)."""
    return router_for(
        group("standard", deployment("openai/down", api_base=dead_api_base()), default=True)
    )


def main() -> None:
    """Serve a FakeProvider in this process: `python -m tests.support.providers PORT
    [SLOW_SECONDS]` (how long the `slow` model takes before it answers)."""
    import sys

    provider = FakeProvider(float(sys.argv[2]) if len(sys.argv) > 2 else SLOW_SECONDS)
    port = int(sys.argv[1]) if len(sys.argv) > 1 else provider.port
    uvicorn.run(provider.app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")


if __name__ == "__main__":
    main()
