"""What LiteLLM would redo on every call and Plume does not need stays undone: the routing
file's prices are registered once, when a Router is built, never per call (each registration
made LiteLLM's next price lookup rebuild a map of its whole price list: a millisecond of CPU
per call, docs/performance.md)."""

from __future__ import annotations

from typing import Any

import pytest

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
