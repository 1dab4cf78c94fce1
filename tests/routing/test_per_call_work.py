"""What LiteLLM would redo on every call and Plume does not need stays undone: the routing
file's prices are registered once, when a Router is built, never per call (each registration
made LiteLLM's next price lookup rebuild a map of its whole price list: a millisecond of CPU
per call, docs/performance.md). And the providers are read through LiteLLM's aiohttp
transport (about 2 ms of CPU a call less than its httpx one), in Plume's strict form that
reports an answer cut short (tests/routing/test_fallbacks.py, test_attempts.py)."""

from __future__ import annotations

from typing import Any

import pytest

from plume.routing import transport
from plume.routing.types import StreamState
from tests.support.providers import deployment, group, router_for, running_fake_provider

MESSAGES = [{"role": "user", "content": "Bonjour"}]


async def test_prices_are_registered_when_the_router_is_built_not_per_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import litellm

    with running_fake_provider() as provider:
        router = router_for(
            group("standard", deployment("ok", provider.api_base, price=(2, 6)), default=True)
        )
        route = router.route("standard", frozenset({"fr"}))
        registered: list[Any] = []
        original = litellm.register_model

        def register(*args: Any, **kwargs: Any) -> Any:
            registered.append(args or kwargs)
            return original(*args, **kwargs)

        monkeypatch.setattr(litellm, "register_model", register)
        await router.complete(route, MESSAGES)  # the first call builds the Router
        built = len(registered)
        assert built > 0
        for _ in range(3):
            completion = await router.complete(route, MESSAGES)
            assert completion.total_tokens > 0
        assert len(registered) == built


async def test_answers_are_read_through_the_strict_aiohttp_transport(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    read: list[str] = []
    original = transport.StrictResponseStream.__aiter__

    def counted(self: transport.StrictResponseStream) -> Any:
        read.append(type(self).__name__)
        return original(self)

    monkeypatch.setattr(transport.StrictResponseStream, "__aiter__", counted)
    with running_fake_provider() as provider:
        router = router_for(group("standard", deployment("ok", provider.api_base), default=True))
        route = router.route("standard", frozenset({"fr"}))
        completion = await router.complete(route, MESSAGES)
        assert completion.text
        state = StreamState()
        words = [delta async for delta in router.stream(route, MESSAGES, state)]
        assert words
    # The plain answer's body and the stream's, each read by Plume's stream.
    assert read == ["StrictResponseStream", "StrictResponseStream"]
