"""What the routing tests share: hosting policies, the failing deployments of each failure
mode, and calls through a router or through the application.

Most tests run against the local fake provider (tests/support/providers.py), whose modes are
chosen by the deployment's model: `ok…` answers, `e500`, `e429` (with Retry-After), `slow`
(answers after the deployment's timeout), `notjson`, `cut` (a stream dropped in the middle)
and `refuse` (a content refusal). Its call counters prove which deployment was really
called. Routing files set `num_retries: 0` unless retries are the point, so that failures
cost no backoff.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from httpx import AsyncClient

from plume.routing.router import ProviderRouter
from plume.routing.types import Completion, StreamState
from tests.support.chat import chat_body
from tests.support.factories import Key
from tests.support.providers import (
    RecordingProvider,
    dead_api_base,
    deployment,
    group,
    router_for,
)

EUROPE = frozenset({"fr", "eu"})  # the operator's default policy


EVERYWHERE = frozenset({"fr", "eu", "non_eu"})


MESSAGES = [{"role": "user", "content": "Rédige une phrase de bienvenue."}]


SLOW_TIMEOUT_S = 0.4


FAILURE_MODES = ["dead", "e500", "e429", "slow", "notjson"]


PlumeFor = Callable[[ProviderRouter], Awaitable[AsyncClient]]


def failing(fake: RecordingProvider, mode: str, **extra: Any) -> dict[str, Any]:
    """A deployment that fails in `mode` (`dead`: nothing listens at its address)."""
    if mode == "dead":
        return deployment("ok-dead", dead_api_base(), provider="failing", **extra)
    timeout = SLOW_TIMEOUT_S if mode == "slow" else 1
    return deployment(mode, fake.api_base, provider="failing", timeout_s=timeout, **extra)


def backed_up(fake: RecordingProvider, mode: str) -> ProviderRouter:
    """`primary` fails in `mode` and falls back to `backup`, which answers."""
    return router_for(
        group("primary", failing(fake, mode), fallbacks=("backup",)),
        group("backup", deployment("ok-backup", fake.api_base, provider="backup")),
    )


async def streamed(
    router: ProviderRouter, route_to: str, hosting: frozenset[str] = EUROPE
) -> tuple[str, StreamState, Completion | None]:
    state = StreamState()
    started = time.perf_counter()
    route = router.route(route_to, hosting)
    async with asyncio.timeout(10):
        parts = [delta async for delta in router.stream(route, MESSAGES, state)]
    return "".join(parts), state, router.settle_stream(state, 0, started)


async def chat(client: AsyncClient, key: Key, model: str | None = None, **extra: Any) -> Any:
    return await client.post(
        "/v1/chat/completions", headers=key.headers, json=chat_body(model, **extra)
    )
