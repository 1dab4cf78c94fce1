"""Routing policy: which groups and deployments a tenant may use, in which order, at what
price and footprint. Pure decisions over the routing file; LiteLLM lives in router.py."""

from __future__ import annotations

import os
from collections.abc import Mapping
from decimal import Decimal

import structlog

from plume.errors import HostingNotAllowed, NotFound, ProviderUnavailable
from plume.routing.config import Deployment, ModelGroup, RoutingConfig
from plume.routing.impact import Footprint, llm_footprint, process_footprint
from plume.routing.types import Route

logger = structlog.get_logger("plume.routing")

_HOSTING_LABELS = {"fr": "France", "eu": "Union européenne", "non_eu": "hors UE"}
_MILLION = Decimal(1_000_000)


def price(deployment: Deployment, prompt_tokens: int, completion_tokens: int) -> Decimal:
    price = deployment.price_per_million_tokens
    cost = (price.input * prompt_tokens + price.output * completion_tokens) / _MILLION
    return cost.quantize(Decimal("0.000001"))


def footprint(deployment: Deployment, completion_tokens: int, latency_s: float) -> Footprint:
    if deployment.is_offline:
        return process_footprint(latency_s)
    if deployment.impact is None:
        return Footprint.unknown()
    impact = deployment.impact
    return llm_footprint(
        total_params_b=impact.total_params_b,
        active_params_b=impact.active,
        zone=impact.zone,
        pue=impact.pue,
        output_tokens=completion_tokens,
        latency_s=latency_s,
    )


def fallbacks_used(route: Route, deployment_id: str) -> int:
    """How many groups of the chain were given up before the one that answered.

    LiteLLM's own header only says whether some fallback served, not how far down."""
    group = deployment_id.rsplit("/", 1)[0]
    return route.chain.index(group) if group in route.chain else 0


class RoutingPolicy:
    """Which deployments may serve a request, and what a call may cost: the routing file
    read against the environment's keys and a tenant's hosting policy, with no LiteLLM."""

    def __init__(self, config: RoutingConfig, environ: Mapping[str, str] | None = None) -> None:
        self.config = config
        environ = os.environ if environ is None else environ
        self._deployments: dict[str, Deployment] = {}
        self._group_deployments: dict[str, list[str]] = {}
        self._keys: dict[str, str | None] = {}
        for group in config.model_groups:
            ids: list[str] = []
            for index, deployment in enumerate(group.deployments):
                deployment_id = f"{group.name}/{index}"
                key = environ.get(deployment.api_key_env) if deployment.api_key_env else None
                if deployment.api_key_env and not key:
                    logger.info(
                        "deployment_skipped",
                        group=group.name,
                        model=deployment.model,
                        reason=f"{deployment.api_key_env} is unset",
                    )
                    continue
                self._deployments[deployment_id] = deployment
                self._keys[deployment_id] = key
                ids.append(deployment_id)
            self._group_deployments[group.name] = ids

    def _chain(self, group: ModelGroup) -> list[str]:
        """The group, then its fallbacks transitively, breadth first, each once."""
        order = [group.name]
        queue = list(group.fallbacks)
        while queue:
            name = queue.pop(0)
            if name in order:
                continue
            order.append(name)
            follower = self.config.group(name)
            if follower is not None:
                queue.extend(follower.fallbacks)
        return order

    def _allowed_ids(self, group_name: str, hosting: frozenset[str]) -> list[str]:
        return [
            deployment_id
            for deployment_id in self._group_deployments.get(group_name, [])
            if self._deployments[deployment_id].hosting in hosting
        ]

    def route(self, requested: str | None, hosting: frozenset[str]) -> Route:
        """Resolve a request's group under a hosting policy, or refuse it."""
        if requested is None:
            group = self.config.default_group
        else:
            found = self.config.group(requested)
            if found is None:
                names = ", ".join(g.name for g in self.usable_groups(hosting)) or "aucun"
                raise NotFound(
                    f"Le modèle « {requested} » n'existe pas. Modèles disponibles : {names}."
                )
            group = found
        chain = tuple(name for name in self._chain(group) if self._allowed_ids(name, hosting))
        if not chain and not any(self._group_deployments.get(n) for n in self._chain(group)):
            raise ProviderUnavailable(
                f"Aucun fournisseur n'est configuré pour le modèle « {group.name} » ni pour ses "
                "modèles de secours : l'opérateur doit renseigner leurs clés d'API."
            )
        if not chain:
            allowed = ", ".join(_HOSTING_LABELS[h] for h in sorted(hosting)) or "aucun"
            raise HostingNotAllowed(
                f"Aucun fournisseur du modèle « {group.name} » ni de ses modèles de secours "
                f"n'est hébergé là où la politique de votre organisation l'autorise "
                f"(hébergements autorisés : {allowed})."
            )
        return Route(group=group, chain=chain, hosting=hosting)

    def leaves_the_process(self, route: Route) -> bool:
        """Whether a deployment the route may reach, fallbacks included, runs outside Plume's
        process: every one but the offline provider (what is pseudonymised, docs/privacy.md)."""
        return any(
            not self._deployments[deployment_id].is_offline
            for name in route.chain
            for deployment_id in self._allowed_ids(name, route.hosting)
        )

    def usable_groups(self, hosting: frozenset[str]) -> list[ModelGroup]:
        return [
            group
            for group in self.config.model_groups
            if any(self._allowed_ids(name, hosting) for name in self._chain(group))
        ]

    def first_choice(self, route: Route) -> tuple[str, str]:
        """The provider and model a route tries first (for metrics of failures)."""
        for name in route.chain:
            for deployment_id in self._allowed_ids(name, route.hosting):
                deployment = self._deployments[deployment_id]
                return deployment.provider_name, deployment.model
        return "none", "none"

    def context_window(self, route: Route, default: int = 8192) -> int:
        """The smallest context window among the deployments that may serve the route."""
        windows = [
            self._deployments[deployment_id].context_window or default
            for name in route.chain
            for deployment_id in self._allowed_ids(name, route.hosting)
            if not self._deployments[deployment_id].is_offline
        ]
        return min(windows) if windows else default

    def output_cap(self, route: Route, max_tokens: int | None) -> int:
        """The most a call may produce: the request's cap if lower than the group's."""
        cap = route.max_output_tokens
        return min(max_tokens, cap) if max_tokens else cap

    def worst_cost(self, route: Route, prompt_tokens: int, completion_tokens: int) -> Decimal:
        """What a call could cost at most, whichever allowed deployment answers (quotas
        reserve this, then settle with the price of the deployment that did)."""
        costs = [
            price(self._deployments[deployment_id], prompt_tokens, completion_tokens)
            for name in route.chain
            for deployment_id in self._allowed_ids(name, route.hosting)
        ]
        return max(costs, default=Decimal(0))
