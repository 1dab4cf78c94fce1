"""Plume's one interface to LiteLLM: a Router per hosting policy, retries, cooldowns and
fallbacks, results priced from the routing file.

Nothing else in Plume imports `litellm`.
"""

from __future__ import annotations

import os

# Before LiteLLM is imported, whatever the environment says (LiteLLM 1.84 reads each at
# import or first use): its model cost map and Anthropic beta headers from the copies it
# ships, never fetched from the network; production mode, in which it does not load a
# `.env` file from the working directory.
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
os.environ["LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS"] = "True"
os.environ["LITELLM_MODE"] = "PRODUCTION"

import contextlib
import logging
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from typing import Any

import anyio
import litellm
import structlog
from litellm.exceptions import (
    BadRequestError,
    ContentPolicyViolationError,
    ContextWindowExceededError,
)
from litellm.router import Router
from litellm.types.router import AllowedFailsPolicy
from litellm.utils import custom_llm_setup

from plume.errors import ContentRefused, InvalidRequest, ProviderUnavailable
from plume.routing import attempts, transport
from plume.routing.config import RoutingConfig
from plume.routing.offline import PROVIDER_NAME, OfflineProvider
from plume.routing.policy import RoutingPolicy, fallbacks_used, footprint, price
from plume.routing.tokens import count_text_tokens
from plume.routing.types import Completion, Route, StreamState

logger = structlog.get_logger("plume.routing")

offline_provider = OfflineProvider()

_CUT = (
    "Le fournisseur d'IA a interrompu sa réponse en cours de route. Le texte déjà produit vous "
    "est facturé ; relancez la demande pour obtenir une réponse complète."
)


def _configure_litellm() -> None:
    """Keep LiteLLM's per-call work lean: no debug output, and no callback but the one that
    counts failed attempts (plume.routing.attempts), which LiteLLM calls only on a failure.

    `turn_off_message_logging` is deliberately left off: that callback reads no message, and
    turning it on makes LiteLLM deep-copy every request to redact it (measured: about 3 ms
    of CPU per call).
    """
    litellm.custom_provider_map = [{"provider": PROVIDER_NAME, "custom_handler": offline_provider}]
    custom_llm_setup()  # type: ignore[no-untyped-call]  # registers the provider name
    litellm.suppress_debug_info = True
    litellm.drop_params = True
    # LiteLLM's aiohttp transport (its default, the proxy's), made to raise on an answer cut
    # short as its httpx transport does: the client is told the answer was cut.
    litellm.disable_aiohttp_transport = False
    transport.install()
    litellm.callbacks = []
    litellm.success_callback = []
    litellm.failure_callback = [attempts.failed_attempt]
    for name in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy", "httpx"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


_configure_litellm()


def _provider_reason(error: Exception) -> str:
    """The provider's own words, without LiteLLM's prefixes and fallback narration."""
    message = str(getattr(error, "message", "") or "")
    message = re.sub(r"^(litellm\.\w+: )+", "", message)
    message = message.split(" Received Model Group=")[0].split("model group '")[0]
    message = re.sub(r"^\w+Exception - ", "", message).strip()
    return message[:300]


def _is_content_refusal(error: Exception) -> bool:
    if isinstance(error, ContentPolicyViolationError):
        return True
    if isinstance(error, BadRequestError):
        text = f"{getattr(error, 'code', '')} {getattr(error, 'message', '')}".lower()
        return "content_policy" in text or "content_filter" in text or "safety system" in text
    return False


# A cooldown sends every tenant of the process to the next deployment or group: only what
# says something about the deployment counts towards one (5xx, 429, 401, 404, after
# `allowed_fails`). A timeout says as much about the request (a long answer asked for) as
# about the provider, and any tenant can cause one at will: it never counts, and the call's
# deadline (plume.calls) bounds what a hanging provider costs. A request refused (400,
# content policy) is the request's own fault: LiteLLM never cools down for those, and this
# says so again. LiteLLM reads 0 here as "use allowed_fails": hence a number never reached.
_NEVER = 1_000_000_000
_COOLDOWN_POLICY = AllowedFailsPolicy(
    TimeoutErrorAllowedFails=_NEVER,
    BadRequestErrorAllowedFails=_NEVER,
    ContentPolicyViolationErrorAllowedFails=_NEVER,
)


class ProviderRouter(RoutingPolicy):
    """The routing policy, and the calls themselves through LiteLLM."""

    def __init__(self, config: RoutingConfig, environ: Mapping[str, str] | None = None) -> None:
        super().__init__(config, environ)
        self._routers: dict[frozenset[str], Router] = {}

    # -- LiteLLM -----------------------------------------------------------------------

    def _router(self, hosting: frozenset[str]) -> Router:
        """One Router per hosting policy, holding only the deployments it allows, so a
        forbidden deployment can never be picked, by a retry or by a fallback."""
        existing = self._routers.get(hosting)
        if existing is not None:
            return existing
        model_list: list[dict[str, Any]] = []
        for group in self.config.model_groups:
            for deployment_id in self._allowed_ids(group.name, hosting):
                deployment = self._deployments[deployment_id]
                params: dict[str, Any] = {
                    "model": deployment.model,
                    "timeout": deployment.timeout_s,
                    "stream_timeout": deployment.timeout_s,
                    "max_retries": 0,  # the Router retries, not the provider SDK
                }
                if deployment.api_base:
                    params["api_base"] = deployment.api_base
                if deployment.max_parallel_requests is not None:
                    params["max_parallel_requests"] = deployment.max_parallel_requests
                key = self._keys[deployment_id]
                if key:
                    params["api_key"] = key
                elif not deployment.is_offline:
                    params["api_key"] = "none"  # local OpenAI-compatible servers need one
                model_list.append(
                    {
                        "model_name": group.name,
                        "litellm_params": params,
                        # The provider's name, for the attempts' counter.
                        # Prices from the routing file, registered once when the Router is
                        # built. Not in litellm_params: LiteLLM would register them again on
                        # every call, and each registration makes its next price lookup
                        # rebuild a map of its whole price list (a millisecond of CPU a call).
                        # Plume prices usage itself (routing.policy); these only keep LiteLLM's
                        # own cost logging quiet.
                        "model_info": {
                            "id": deployment_id,
                            attempts.PROVIDER_KEY: deployment.provider_name,
                            "input_cost_per_token": float(deployment.price_per_million_tokens.input)
                            / 1_000_000,
                            "output_cost_per_token": float(
                                deployment.price_per_million_tokens.output
                            )
                            / 1_000_000,
                        },
                    }
                )
        router: Router = Router(
            model_list=model_list,
            # No Router-wide fallbacks: each request passes its own chain (and streams none,
            # see stream()).
            num_retries=self.config.num_retries,
            retry_after=0,
            allowed_fails=self.config.allowed_fails,
            allowed_fails_policy=_COOLDOWN_POLICY,
            cooldown_time=self.config.cooldown_s,
            cache_responses=False,
        )
        self._routers[hosting] = router
        return router

    def _call_arguments(
        self,
        route: Route,
        messages: list[dict[str, Any]],
        max_tokens: int | None,
        sampling: Mapping[str, Any],
    ) -> dict[str, Any]:
        # Every allowed deployment of the group gets its chance before the next group:
        # a retry goes to another deployment when the failed one is cooling down.
        siblings = len(self._allowed_ids(route.chain[0], route.hosting)) - 1
        arguments: dict[str, Any] = {
            "model": route.chain[0],
            "num_retries": self.config.num_retries + max(siblings, 0),
            "messages": messages,
            "max_tokens": self.output_cap(route, max_tokens),
            # The request's own list replaces the Router's: exactly the allowed chain.
            "fallbacks": [{route.chain[0]: list(route.chain[1:])}] if len(route.chain) > 1 else [],
            **sampling,
        }
        return arguments

    async def complete(
        self,
        route: Route,
        messages: list[dict[str, Any]],
        *,
        max_tokens: int | None = None,
        sampling: Mapping[str, Any] | None = None,
    ) -> Completion:
        started = time.perf_counter()
        arguments = self._call_arguments(route, messages, max_tokens, sampling or {})
        try:
            response = await self._router(route.hosting).acompletion(**arguments)
        except Exception as exc:
            raise self._translate(exc, route, started) from None
        hidden = getattr(response, "_hidden_params", {}) or {}
        deployment_id = str(hidden.get("model_id"))
        deployment = self._deployments[deployment_id]
        attempts.count(deployment.provider_name, deployment_id, attempts.SUCCESS)
        choice = response.choices[0]
        text = choice.message.content or ""
        usage = getattr(response, "usage", None)
        prompt_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
        completion_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
        if usage is None:
            completion_tokens = count_text_tokens(text)
        latency = time.perf_counter() - started
        impact = footprint(deployment, completion_tokens, latency)
        completion = Completion(
            text=text,
            finish_reason=choice.finish_reason,
            provider=deployment.provider_name,
            model=deployment.model,
            deployment_id=deployment_id,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            cost_eur=price(deployment, prompt_tokens, completion_tokens),
            fallbacks=fallbacks_used(route, deployment_id),
            latency_s=latency,
            energy_kwh=impact.energy_kwh,
            gwp_kgco2eq=impact.gwp_kgco2eq,
        )
        # Success is logged once per request by its settlement (plume.calls), with the usage.
        return completion

    async def stream(
        self,
        route: Route,
        messages: list[dict[str, Any]],
        state: StreamState,
        *,
        max_tokens: int | None = None,
        sampling: Mapping[str, Any] | None = None,
    ) -> AsyncIterator[str]:
        """Yield text deltas; `state` holds usage and the deployment when it ends.

        A stream that ends without a word (a provider answering 200 with a body LiteLLM
        cannot read) counts as a failure: since nothing reached the client yet, the next
        group of the chain is tried. Closing the iterator early closes the provider's stream.
        """
        started = time.perf_counter()
        # Streams fall back group by group here rather than inside LiteLLM: once words have
        # reached the client, LiteLLM would resume on another model with a continuation
        # prompt of its own, splicing two answers. Plume falls back only before the first
        # word, and reports a cut stream as an error.
        for position, name in enumerate(route.chain):
            single = Route(route.group, (name,), route.hosting)
            last = position + 1 == len(route.chain)
            state.text_parts.clear()
            state.finish_reason = None
            state.prompt_tokens = state.completion_tokens = None
            attempt = self._stream_once(
                single, route, messages, state, started, max_tokens, sampling
            )
            try:
                # Closed with this generator, at once (not when it is collected).
                async with contextlib.aclosing(attempt):
                    async for delta in attempt:
                        yield delta
            except ProviderUnavailable:
                if state.text_parts:
                    # Cut after its first words: what it produced was paid for (plume.calls).
                    raise ProviderUnavailable(_CUT) from None
                if last:
                    raise
                continue
            if state.text_parts:
                self._count_attempt(state.deployment_id, attempts.SUCCESS)
                return
            # A stream that ended without a word (a body LiteLLM could not read) is a
            # failure too; nothing reached the client, so the next group is tried.
            self._count_attempt(state.deployment_id, attempts.SERVER_ERROR)
            logger.warning("provider_call", group=name, outcome="empty_stream")
            state.finished = False
        raise ProviderUnavailable()

    async def _stream_once(
        self,
        route: Route,
        original: Route,
        messages: list[dict[str, Any]],
        state: StreamState,
        started: float,
        max_tokens: int | None,
        sampling: Mapping[str, Any] | None,
    ) -> AsyncGenerator[str, None]:
        arguments = self._call_arguments(route, messages, max_tokens, sampling or {})
        try:
            response = await self._router(route.hosting).acompletion(
                **arguments, stream=True, stream_options={"include_usage": True}
            )
        except Exception as exc:
            raise self._translate(exc, route, started) from None
        hidden = getattr(response, "_hidden_params", {}) or {}
        state.deployment_id = str(hidden.get("model_id"))
        state.fallbacks = fallbacks_used(original, state.deployment_id)
        # Counted here if Plume stops reading first; else by stream() (an answer, or none)
        # or by LiteLLM's failure callback (an error in the middle).
        stopped: str | None = attempts.CANCELLED
        try:
            async for chunk in response:
                usage = getattr(chunk, "usage", None)
                if usage is not None and getattr(usage, "total_tokens", None):
                    state.prompt_tokens = int(usage.prompt_tokens or 0)
                    state.completion_tokens = int(usage.completion_tokens or 0)
                if not chunk.choices:
                    continue
                choice = chunk.choices[0]
                if choice.finish_reason:
                    state.finish_reason = choice.finish_reason
                delta = choice.delta.content if choice.delta is not None else None
                if delta:
                    if state.first_token_at is None:
                        state.first_token_at = time.perf_counter()
                    state.text_parts.append(delta)
                    yield delta
            state.finished = True
            stopped = None
        except Exception as exc:
            stopped = None
            raise self._translate(exc, route, started) from None
        finally:
            if stopped is not None:
                self._count_attempt(state.deployment_id, stopped)
            # An abandoned stream must be closed, or the provider keeps generating.
            closer = getattr(response, "aclose", None)
            if closer is not None and not state.finished:
                with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
                    await closer()

    def _count_attempt(self, deployment_id: str | None, outcome: str) -> None:
        deployment = self._deployments.get(deployment_id or "")
        if deployment_id is not None and deployment is not None:
            attempts.count(deployment.provider_name, deployment_id, outcome)

    def settle_stream(
        self, state: StreamState, prompt_estimate: int, started: float
    ) -> Completion | None:
        """The stream's usage: the provider's figures, else estimates of what was produced."""
        if state.deployment_id is None or state.deployment_id not in self._deployments:
            return None
        deployment = self._deployments[state.deployment_id]
        text = "".join(state.text_parts)
        prompt_tokens = state.prompt_tokens if state.prompt_tokens is not None else prompt_estimate
        completion_tokens = (
            state.completion_tokens
            if state.completion_tokens is not None
            else count_text_tokens(text)
        )
        latency = time.perf_counter() - started
        impact = footprint(deployment, completion_tokens, latency)
        return Completion(
            text=text,
            finish_reason=state.finish_reason,
            provider=deployment.provider_name,
            model=deployment.model,
            deployment_id=state.deployment_id,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            cost_eur=price(deployment, prompt_tokens, completion_tokens),
            fallbacks=state.fallbacks,
            latency_s=latency,
            energy_kwh=impact.energy_kwh,
            gwp_kgco2eq=impact.gwp_kgco2eq,
            ttft_s=(state.first_token_at - started) if state.first_token_at else None,
        )

    def _translate(self, error: Exception, route: Route, started: float) -> Exception:
        status = getattr(error, "status_code", None)
        logger.warning(
            "provider_call",
            group=route.chain[0],
            outcome="failure",
            error_type=type(error).__name__,
            status=status,
            latency_ms=round((time.perf_counter() - started) * 1000, 1),
        )
        if _is_content_refusal(error):
            reason = _provider_reason(error)
            return ContentRefused(
                "Le fournisseur d'IA a refusé de traiter ce contenu (politique de contenu du "
                "fournisseur). Reformulez la demande ou retirez le passage en cause."
                + (f" Motif donné par le fournisseur : « {reason} »." if reason else "")
            )
        if isinstance(error, ContextWindowExceededError):
            return InvalidRequest(
                "La demande est trop longue pour les modèles disponibles : réduisez le texte "
                "fourni ou le nombre de messages."
            )
        return ProviderUnavailable()
