"""The chat tests' routing, to the session's fake provider (tests/support/providers.py)."""

from __future__ import annotations

from plume.routing.router import ProviderRouter
from tests.support.providers import (
    ANSWER,
    RecordingProvider,
    deployment,
    group,
    router_for,
)

ALL_KINDS_BUT_CHAT = ["arrete", "deliberation", "courrier", "bulletin_article", "synthese"]


WORDS = ANSWER.split(" ")


def chat_router(fake: RecordingProvider) -> ProviderRouter:
    """`assistant` answers; `relay` fails and falls back to it; `drip` streams for seconds;
    `europe` is hosted in the EU and `abroad` outside it."""
    return router_for(
        group("assistant", deployment("ok-chat", fake.api_base, provider="fake"), default=True),
        group(
            "relay",
            deployment("e500", fake.api_base, provider="failing"),
            fallbacks=("assistant",),
        ),
        group("drip", deployment("drip", fake.api_base, provider="fake")),
        group("europe", deployment("ok-chat-eu", fake.api_base, hosting="eu")),
        group("abroad", deployment("ok-chat-abroad", fake.api_base, hosting="non_eu")),
    )
