"""Shared by the routing and chat tests: routing files pointing at the local fake provider,
a fake provider that also records what it receives, servers in background threads, and
checks of OpenAI's answer shapes."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any

import uvicorn
import yaml
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient, Response
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import Request
from starlette.responses import Response as StarletteResponse
from starlette.responses import StreamingResponse
from starlette.types import ASGIApp

from plume.app import create_app
from plume.config import Settings
from plume.routing.config import parse_routing
from plume.routing.router import ProviderRouter
from tests.fake_provider import FakeProvider, free_port

# --------------------------------------------------------------------------------------
# The fake provider, recording requests, with a long "drip" stream
# --------------------------------------------------------------------------------------

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

    def __init__(self, slow_seconds: float = 3.0) -> None:
        super().__init__(slow_seconds=slow_seconds)
        self.received: list[Received] = []
        self.drip_sent = 0
        self.drips_finished = 0

    def bodies(self, model: str) -> list[dict[str, Any]]:
        return [r.body for r in self.received if r.body.get("model") == model]

    async def chat(self, request: Request) -> StarletteResponse:
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
def serve_in_thread(
    app: ASGIApp | FastAPI, port: int, *, lifespan: str = "off"
) -> Iterator[uvicorn.Server]:
    """Serve an ASGI app with uvicorn on 127.0.0.1 from a background thread."""
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan=lifespan
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("server did not start")
        time.sleep(0.02)
    try:
        yield server
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextmanager
def running_recording_provider(slow_seconds: float = 3.0) -> Iterator[RecordingProvider]:
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


def unreachable_router() -> ProviderRouter:
    """A default group whose only provider refuses connections: every call fails (502)."""
    return router_for(
        group("standard", deployment("openai/down", api_base=dead_api_base()), default=True)
    )


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
    text = routing_yaml(*groups, **top)
    return ProviderRouter(
        parse_routing(text, "test.yaml"), environ={} if environ is None else environ
    )


@asynccontextmanager
async def app_client(
    settings: Settings,
    session_factory: async_sessionmaker[AsyncSession],
    provider_router: ProviderRouter | None,
) -> AsyncIterator[AsyncClient]:
    """A client for an application routed by `provider_router` (the test's transaction)."""
    app = create_app(settings, session_factory=session_factory, provider_router=provider_router)
    transport = ASGITransport(app=app, raise_app_exceptions=False)
    async with AsyncClient(transport=transport, base_url="http://plume.test") as http:
        yield http


# --------------------------------------------------------------------------------------
# OpenAI's shapes
# --------------------------------------------------------------------------------------

_FRENCH_WORDS = {
    *("de", "la", "le", "les", "du", "des", "un", "une", "ce", "cet", "cette", "à"),
    *("est", "ne", "pas", "aucun", "aucune", "votre", "vous", "clé", "doit", "être"),
    *("et", "ou", "en", "au", "aux", "par", "pour", "sur", "dans", "non", "valeur", "champ"),
    *("champs", "sont", "plusieurs"),
}


def looks_french(text: str) -> bool:
    words = set(re.findall(r"[a-zà-ÿ]+", text.lower()))
    return bool(words & _FRENCH_WORDS) or any(char in text for char in "éèêàçù")


def assert_openai_error(response: Response, status: int, code: str) -> dict[str, Any]:
    """OpenAI's error shape (not problem+json), with Plume's code and a French message."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json"), response.headers
    assert response.headers.get("x-request-id")
    body = response.json()
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert {"message", "type", "code"} <= set(error), error
    assert error["code"] == code, error
    assert isinstance(error["type"], str)
    assert error["type"]
    assert isinstance(error["message"], str)
    assert looks_french(error["message"]), error["message"]
    for field in ("status", "title", "detail", "request_id"):
        assert field not in body
    return error


def sse_data(text: str) -> list[str]:
    """The `data:` payloads of a Server-Sent Events body, in order."""
    events = [block for block in text.split("\n\n") if block.strip()]
    payloads: list[str] = []
    for block in events:
        lines = [line for line in block.splitlines() if line.startswith("data:")]
        assert lines, f"an event without data: {block!r}"
        payloads.append("\n".join(line.removeprefix("data:").strip() for line in lines))
    return payloads


def chat_body(model: str | None = None, content: str = "Bonjour", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"messages": [{"role": "user", "content": content}], **extra}
    if model is not None:
        body["model"] = model
    return body
