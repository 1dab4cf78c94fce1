"""What a provider-backed request carries through its unit of work: who asked and how, what
it may consume, what it did consume, and how it ended."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal, Protocol

from plume.errors import PlumeError, ProviderUnavailable
from plume.routing.types import Completion

if TYPE_CHECKING:
    from plume.calls.unit import ProviderCall

# A call's kind is a document kind, or this one for the OpenAI-compatible chat completions.
CHAT_KIND = "chat"

# "queued": accepted as a job (a long synthèse); the job settles it when it ends.
Outcome = Literal["success", "failure", "client_disconnected", "queued"]


@dataclass(frozen=True, slots=True)
class RequestFacts:
    """The HTTP request behind a call, as the settlement records it (never its text)."""

    request_id: str | None
    idempotency_key: str | None = None
    # SHA-256 of the request (method, route, body), with the Idempotency-Key.
    request_hash: str | None = None
    client_address: str | None = None
    # SHA-256 and size of the request body.
    input_digest: dict[str, Any] | None = None


# A background job acts for the request that queued it, which has no HTTP request of its own.
BACKGROUND = RequestFacts(request_id=None)


@dataclass(frozen=True, slots=True)
class Estimate:
    """What a request may consume at most, known before the call (quota reservations)."""

    prompt_tokens: int
    # Per provider call: the group's max_output_tokens, or the request's if lower.
    output_tokens: int
    # A long synthèse makes one call per part, then the final one.
    calls: int = 1

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.output_tokens * self.calls


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """The answer given to a request, kept for the retries of its Idempotency-Key."""

    status_code: int
    content_type: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Totals:
    """What a request consumed over all its provider calls."""

    prompt_tokens: int
    completion_tokens: int
    cost_eur: Decimal
    # None when one of the calls' models has no known parameters.
    energy_kwh: float | None = None
    gwp_kgco2eq: float | None = None


@dataclass(slots=True)
class Usage:
    """What the provider calls of one request have produced so far, added up."""

    provider: str | None = None
    model: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_eur: Decimal = Decimal(0)
    fallbacks: int = 0
    # None as soon as one call's model has unknown parameters: never a partial sum.
    energy_kwh: float | None = 0.0
    gwp_kgco2eq: float | None = 0.0
    calls: int = 0
    # Residents' identifiers the provider was shown as placeholders (docs/privacy.md).
    pseudonymised: int = 0

    def add(self, completion: Completion) -> None:
        self.provider = completion.provider
        self.model = completion.model
        self.prompt_tokens += completion.prompt_tokens
        self.completion_tokens += completion.completion_tokens
        self.cost_eur += completion.cost_eur
        self.fallbacks = max(self.fallbacks, completion.fallbacks)
        self.energy_kwh = _plus(self.energy_kwh, completion.energy_kwh)
        self.gwp_kgco2eq = _plus(self.gwp_kgco2eq, completion.gwp_kgco2eq)
        self.calls += 1

    def totals(self) -> Totals:
        if self.calls == 0:
            return Totals(0, 0, Decimal(0), 0.0, 0.0)
        return Totals(
            self.prompt_tokens,
            self.completion_tokens,
            self.cost_eur,
            self.energy_kwh,
            self.gwp_kgco2eq,
        )


def _plus(total: float | None, more: float | None) -> float | None:
    return None if total is None or more is None else total + more


@dataclass(frozen=True, slots=True)
class CallOutcome:
    """How a call ended, with what it consumed."""

    outcome: Outcome
    # The provider's last answer, if it gave one (a stream: what it produced).
    completion: Completion | None = None
    error_code: str | None = None
    totals: Totals = field(default_factory=lambda: Totals(0, 0, Decimal(0), 0.0, 0.0))
    # The draft the request created, and the digest of what it answered.
    output_digest: dict[str, Any] | None = None

    @property
    def charged(self) -> bool:
        """Whether the request counts against quotas. A failure with nothing produced
        releases everything; but what a provider produced was paid for, however the request
        ended: a stream cut after its first words, a synthèse whose later part failed, or a
        provider that answered before Plume failed (storing the draft) is charged."""
        if self.outcome != "failure":
            return True
        if self.completion is None:
            return False
        return self.error_code == "internal_error" or self.totals.completion_tokens > 0


class SettledElsewhere(PlumeError):
    """Another process holds this call's work now (a job whose lease another worker took
    over). Raised by a settlement's `store`, the settlement rolls back and nothing it would
    have stored is written twice; raised by the work itself, it stops. Either way the call
    is settled as a failure with this code, charged what its provider produced."""

    code = "lease_lost"


class Interrupted(PlumeError):
    """The process is stopping while the call runs (a job's worker cancelled on SIGTERM):
    the call is settled with what it consumed, and the job resumed elsewhere."""

    status = 503
    code = "interrupted"


class FailedAfterProducing(ProviderUnavailable):
    """A provider failed after earlier calls of the same request had produced something (a
    synthèse's later part): what they produced is charged, and the detail says so."""

    default_detail = (
        "Le fournisseur d'IA a échoué en cours de travail. Ce qu'il avait déjà produit vous "
        "est facturé ; relancez la demande dans quelques minutes."
    )


class DeadlineExceeded(ProviderUnavailable):
    """A provider call outlasted its deadline (PLUME_PROVIDER_DEADLINE_S): its attempts,
    retries and fallbacks, or a stream to its last word."""

    def __init__(self, deadline_s: float, produced: bool) -> None:
        charged = (
            "Le texte déjà produit vous est facturé."
            if produced
            else "Rien ne vous a été facturé ; réessayez dans quelques minutes."
        )
        super().__init__(
            f"Le fournisseur d'IA n'a pas terminé sa réponse dans le délai de {deadline_s:g} "
            f"secondes fixé par l'opérateur. {charged}"
        )


class CallObserver(Protocol):
    """Sees every settled call, outside any transaction (metrics)."""

    def observe(self, call: ProviderCall, outcome: CallOutcome) -> None: ...
