"""Every attempt at a provider, counted by the deployment tried and how it ended
(`plume_provider_attempts_total`): the retries LiteLLM makes, the other deployments of a
group it moves to, the fallback groups, and the failures a later attempt covered.

A failed attempt is reported by LiteLLM itself, through the failure callback router.py
registers (called once per attempt, as LiteLLM's own cooldowns are); the attempt that
answered is counted by the router, which knows the deployment from the answer. No LiteLLM
here: the callback's arguments are plain dictionaries.
"""

from __future__ import annotations

from typing import Any

import httpx

from plume.metrics import registry

SUCCESS = "success"
# How a failed attempt ended, from the provider's status: a fixed set of labels.
RATE_LIMITED = "rate_limited"  # 429
TIMEOUT = "timeout"  # no answer within the deployment's timeout (408, read timeout)
CLIENT_ERROR = "client_error"  # other 4xx: refused content, bad key, unknown model
SERVER_ERROR = "server_error"  # 5xx, no connection, an unreadable or empty answer
CANCELLED = "cancelled"  # a stream Plume stopped reading (the client left, the deadline)

# The key of a deployment's `model_info` that names its provider, set by router.py.
PROVIDER_KEY = "plume_provider"


def outcome_of(error: BaseException) -> str:
    status = getattr(error, "status_code", None)
    if status == 429:
        return RATE_LIMITED
    if status == 408 or isinstance(error, TimeoutError | httpx.TimeoutException):
        return TIMEOUT
    if isinstance(status, int) and 400 <= status < 500:
        return CLIENT_ERROR
    return SERVER_ERROR


def count(provider: str, deployment_id: str, outcome: str) -> None:
    group = deployment_id.rsplit("/", 1)[0]
    registry.PROVIDER_ATTEMPTS.labels(provider, deployment_id, group, outcome).inc()


def failed_attempt(
    kwargs: dict[str, Any], response: object, start_time: object, end_time: object
) -> None:
    """LiteLLM's failure callback (its signature): one failed attempt at a deployment of
    Plume's, mid-stream failures included. Whatever goes wrong here is LiteLLM's to swallow,
    and it does; the lookups are defensive all the same."""
    params = kwargs.get("litellm_params") or {}
    info = params.get("model_info") or {}
    deployment_id = info.get("id")
    provider = info.get(PROVIDER_KEY)
    if not isinstance(deployment_id, str) or not isinstance(provider, str):
        return  # not a call of Plume's routers
    error = kwargs.get("exception")
    outcome = outcome_of(error) if isinstance(error, BaseException) else SERVER_ERROR
    count(provider, deployment_id, outcome)
