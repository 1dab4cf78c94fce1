"""Plume's Prometheus metrics (prefix plume_), and their exposition, multiprocess-safe.

Labels never carry anything tenant-specific but the organisation's slug (INSEE code, SIREN or
`operator`); routes are labelled by template, never by raw path; no prompt or output text.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

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
# Refreshed from the database on a timer; with several workers the freshest value wins and
# an exited worker's value is dropped, rather than the workers' values being added up.
QUOTA_USED_RATIO = Gauge(
    "plume_quota_used_ratio",
    "Share of a quota used (used plus reserved, over the limit) in the current period",
    ["organization", "metric", "period"],
    multiprocess_mode="livemostrecent",
)


def exposition() -> tuple[bytes, str]:
    """The text exposition; with several workers, the sum of every process's files."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST
