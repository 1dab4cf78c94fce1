"""Counts each provider-backed request once it is settled (no database work)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from plume.calls.context import CallOutcome
from plume.metrics import registry
from plume.routing.policy import RoutingPolicy

if TYPE_CHECKING:
    from plume.calls.unit import ProviderCall


class MetricsObserver:
    def __init__(self, router: RoutingPolicy) -> None:
        self.router = router

    def observe(self, call: ProviderCall, outcome: CallOutcome) -> None:
        if outcome.outcome == "queued":
            return  # the job counts the request when it settles
        organization = call.principal.organization.slug
        group = call.route.group.name
        registry.REQUESTS.labels(organization, call.kind, group, outcome.outcome).inc()
        completion = outcome.completion
        consumed = outcome.totals
        # Incremented even by zero, so that every series a request touched is exposed.
        registry.TOKENS.labels(organization, group, "prompt").inc(consumed.prompt_tokens)
        registry.TOKENS.labels(organization, group, "completion").inc(consumed.completion_tokens)
        # Unknown impact (a model without parameters) is left out, not counted as zero.
        if consumed.energy_kwh is not None:
            registry.ENERGY.labels(organization).inc(consumed.energy_kwh)
        if consumed.gwp_kgco2eq is not None:
            registry.GWP.labels(organization).inc(consumed.gwp_kgco2eq)
        first_provider, first_model = self.router.first_choice(call.route)
        if completion is None:
            registry.PROVIDER_REQUESTS.labels(first_provider, first_model, "failure").inc()
            return
        registry.COST.labels(organization, completion.provider).inc(float(consumed.cost_eur))
        registry.PROVIDER_REQUESTS.labels(completion.provider, completion.model, "success").inc()
        registry.PROVIDER_LATENCY.labels(completion.provider).observe(completion.latency_s)
        if completion.ttft_s is not None:  # a stream that produced words
            registry.TIME_TO_FIRST_TOKEN.labels(group).observe(completion.ttft_s)
        if completion.fallbacks:
            registry.FALLBACKS.labels(first_provider, completion.provider).inc()
