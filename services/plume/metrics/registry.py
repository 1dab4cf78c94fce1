"""Plume's Prometheus metrics (prefix plume_), and their exposition, multiprocess-safe.

Labels never carry anything tenant-specific but the organisation's slug (INSEE code, SIREN or
`operator`); routes are labelled by template, never by raw path; no prompt or output text.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Metric,
    generate_latest,
)
from prometheus_client import multiprocess as multiprocess_collector

REQUESTS = Counter(
    "plume_requests",
    "Drafting and chat requests, by tenant, kind, model group and outcome",
    ["organization", "kind", "model_group", "outcome"],
)
TOKENS = Counter(
    "plume_tokens",
    "Tokens sent to (prompt) and received from (completion) providers",
    ["organization", "model_group", "direction"],
)
COST = Counter(
    "plume_cost_euros",
    "Estimated provider cost in EUR, from the routing file's prices",
    ["organization", "provider"],
)
PROVIDER_REQUESTS = Counter(
    "plume_provider_requests",
    "Provider-backed requests by the provider that answered (or was first tried)",
    ["provider", "model", "outcome"],
)
PROVIDER_LATENCY = Histogram(
    "plume_provider_latency_seconds",
    "Time from sending a request to a provider to its complete answer",
    ["provider"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 40, 60, 120, 300),
)
FALLBACKS = Counter(
    "plume_fallbacks",
    "Requests answered by a fallback group rather than the one asked for",
    ["from_provider", "to_provider"],
)
HTTP_DURATION = Histogram(
    "plume_http_request_duration_seconds",
    "HTTP request duration by route template, method and status",
    ["route", "method", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
ENERGY = Counter(
    "plume_energy_kwh",
    "Estimated energy used by providers for this tenant's requests (EcoLogits methodology)",
    ["organization"],
)
GWP = Counter(
    "plume_gwp_kgco2eq",
    "Estimated greenhouse-gas emissions of this tenant's requests (EcoLogits methodology)",
    ["organization"],
)
# Every error answer (status 400 or more), by the caller's organisation (`anonymous` when no
# key was recognised), status and problem code: both from a fixed set (plume.errors).
REFUSALS = Counter(
    "plume_refusals",
    "Error answers (4xx, 5xx) by the caller's organisation, status and problem code",
    ["organization", "status", "code"],
)
# Each attempt LiteLLM makes (retries, another deployment of the group, fallback groups), by
# the deployment tried (its id in the routing file, `group/index`) and how it ended.
PROVIDER_ATTEMPTS = Counter(
    "plume_provider_attempts",
    "Provider attempts by provider, deployment, model group and outcome",
    ["provider", "deployment", "model_group", "outcome"],
)
TIME_TO_FIRST_TOKEN = Histogram(
    "plume_time_to_first_token_seconds",
    "Time from a streamed request's start to its first word, fallbacks included",
    ["model_group"],
    buckets=(0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 20, 30, 60, 120),
)
AUDIT_VERIFICATION_FAILURES = Counter(
    "plume_audit_verification_failures",
    "Audit chain verifications that found a break, by the chain's organisation",
    ["organization"],
)
# Refreshed from the database on a timer; with several workers the freshest value wins and
# an exited worker's value is dropped, rather than the workers' values being added up.
QUOTA_USED_RATIO = Gauge(
    "plume_quota_used_ratio",
    "Share of a quota used (used plus reserved, over the limit) in the current period",
    ["organization", "metric", "period"],
    multiprocess_mode="livemostrecent",
)
SYNTHESE_JOBS = Gauge(
    "plume_synthese_jobs",
    "Synthèse jobs waiting for a worker (queued) or held by one (running)",
    ["state"],
    multiprocess_mode="livemostrecent",
)
SYNTHESE_OLDEST_QUEUED = Gauge(
    "plume_synthese_oldest_queued_seconds",
    "Age of the oldest synthèse job waiting for a worker (0 when none waits)",
    multiprocess_mode="livemostrecent",
)
# One series per organisation, value 1, for dashboards to show names (`group_left(name)`).
# A series that no longer holds (a renamed organisation) is removed; with several workers,
# whose files cannot forget a series, it is set to 0 instead, and the exposition leaves out
# this metric's zeros (see `multiprocess_registry`).
ORGANIZATION_INFO = Gauge(
    "plume_organization_info",
    "Each organisation's name, kind and parent's slug (value 1)",
    ["organization", "name", "kind", "parent"],
    multiprocess_mode="livemostrecent",
)


def multiprocess() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


def retire(gauge: Gauge, *labels: str) -> None:
    """Stop exposing one series of an info gauge, in this process and across workers."""
    if multiprocess():
        gauge.labels(*labels).set(0)
    else:
        with contextlib.suppress(KeyError):
            gauge.remove(*labels)


class _LiveSeries:
    """The workers' files, without the retired (zero) series of the info gauges."""

    def __init__(self) -> None:
        self.files = multiprocess_collector.MultiProcessCollector(None)  # type: ignore[no-untyped-call]

    def collect(self) -> Iterator[Metric]:
        for family in self.files.collect():  # type: ignore[no-untyped-call]
            if family.name == "plume_organization_info":
                family.samples = [sample for sample in family.samples if sample.value != 0]
            yield family


def multiprocess_registry() -> CollectorRegistry:
    """A registry that adds up every worker's files (PROMETHEUS_MULTIPROC_DIR)."""
    registry = CollectorRegistry()
    registry.register(_LiveSeries())
    return registry


def exposition() -> tuple[bytes, str]:
    """The text exposition; with several workers, the sum of every process's files."""
    if multiprocess():
        return generate_latest(multiprocess_registry()), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST
