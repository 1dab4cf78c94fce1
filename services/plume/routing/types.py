"""What routing hands to the rest of Plume: a request's route, and what a provider produced.

These carry no LiteLLM: quotas, the provider-call unit of work and metrics use them without
importing the gateway.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from decimal import Decimal

from plume.routing.config import ModelGroup


@dataclass(frozen=True, slots=True)
class Route:
    """Where a request may go: its group, then the allowed fallback groups, in order."""

    group: ModelGroup
    chain: tuple[str, ...]
    hosting: frozenset[str]

    @property
    def max_output_tokens(self) -> int:
        return self.group.max_output_tokens


@dataclass(slots=True)
class Completion:
    text: str
    finish_reason: str | None
    provider: str
    model: str
    deployment_id: str
    prompt_tokens: int
    completion_tokens: int
    cost_eur: Decimal
    fallbacks: int
    latency_s: float
    # Energy and emissions (None when the model's parameters are unknown); time to the
    # first token of a stream.
    energy_kwh: float | None = None
    gwp_kgco2eq: float | None = None
    ttft_s: float | None = None

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(slots=True)
class StreamState:
    """What a stream has produced so far; complete once `finished` is set."""

    text_parts: list[str] = field(default_factory=list)
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str | None = None
    deployment_id: str | None = None
    first_token_at: float | None = None
    fallbacks: int = 0
    finished: bool = False


# Set by a provider call around each request to the Router (plume.calls.privacy): what puts a
# pseudonymised request back in clear. The offline provider (routing/offline.py) runs in the
# process, which holds the request in clear anyway: it reads it as it was written, and its
# answer needs no restoring (a text without placeholders is restored as it is). Here, not
# there, so that setting it imports no LiteLLM.
REVEAL: ContextVar[Callable[[str], str] | None] = ContextVar("plume_offline_reveal", default=None)
