"""The routing file: model groups and their deployments, validated at start-up.

A malformed file, or a deployment without a price, stops start-up with one line naming the
line and the field at fault. A deployment whose key variable is unset is skipped, with one
log line.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import structlog
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from plume.config import ConfigurationError
from plume.routing.impact import known_zone

logger = structlog.get_logger("plume.routing")

Hosting = Literal["fr", "eu", "non_eu"]
OFFLINE_MODEL = "plume_offline/offline"
OFFLINE_PROVIDER = "offline"

# Provider names by LiteLLM prefix, for `usage.provider` and metrics.
_PROVIDER_BY_PREFIX = {
    "plume_offline": OFFLINE_PROVIDER,
    "mistral": "mistral",
    "openai": "openai",
    "anthropic": "anthropic",
    "ovhcloud": "ovhcloud",
    "scaleway": "scaleway",
    "hosted_vllm": "vllm",
    "ollama": "ollama",
    "ollama_chat": "ollama",
}


class Price(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input: Decimal = Field(ge=0, description="EUR per million prompt tokens")
    output: Decimal = Field(ge=0, description="EUR per million completion tokens")


class Impact(BaseModel):
    """Model parameters for energy and GHG estimates (EcoLogits methodology)."""

    model_config = ConfigDict(extra="forbid")

    total_params_b: float = Field(gt=0, le=100_000, description="Billions of parameters")
    active_params_b: float | None = Field(
        default=None, gt=0, description="For a mixture of experts; default: all of them"
    )
    zone: str = Field(default="FRA", description="ISO 3166-1 alpha-3 code of the electricity mix")
    pue: float = Field(default=1.2, ge=1, le=3, description="Datacenter power usage effectiveness")

    @field_validator("zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        if not known_zone(value):
            raise ValueError(
                f"unknown electricity-mix zone {value!r} (ISO 3166-1 alpha-3, e.g. FRA)"
            )
        return value

    @property
    def active(self) -> float:
        return self.active_params_b or self.total_params_b


class Deployment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=3, description="A LiteLLM model string, e.g. mistral/…")
    provider: str | None = Field(default=None, description="Name in usage and metrics")
    api_key_env: str | None = None
    api_base: str | None = None
    hosting: Hosting
    price_per_million_tokens: Price
    timeout_s: float = Field(default=60, gt=0, le=3600)
    context_window: int | None = Field(default=None, gt=0)
    # Requests this process sends the deployment at once (LiteLLM's Router waits for a free
    # slot): the provider's own concurrency limit, shared by a synthèse's parts and the rest.
    max_parallel_requests: int | None = Field(default=None, ge=1)
    impact: Impact | None = None

    @field_validator("model")
    @classmethod
    def _has_provider_prefix(cls, value: str) -> str:
        if "/" not in value:
            raise ValueError("must be 'provider/model', e.g. mistral/mistral-small-latest")
        return value

    @property
    def provider_name(self) -> str:
        if self.provider:
            return self.provider
        prefix = self.model.split("/", 1)[0]
        return _PROVIDER_BY_PREFIX.get(prefix, prefix)

    @property
    def is_offline(self) -> bool:
        return self.model.startswith("plume_offline/")


class ModelGroup(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")
    description: str | None = None
    default: bool = False
    max_output_tokens: int = Field(default=2048, gt=0, le=200_000)
    fallbacks: list[str] = Field(default_factory=list)
    deployments: list[Deployment] = Field(min_length=1)


class RoutingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model_groups: list[ModelGroup] = Field(min_length=1)
    num_retries: int = Field(default=1, ge=0, le=5)
    # LiteLLM reads 0 as its own default (5 s): a cooldown cannot be switched off.
    cooldown_s: float = Field(default=30, gt=0)
    # Failures a deployment may have within `cooldown_s` before it is cooled down for every
    # tenant of the process (0: at once, so that a retry goes to a sibling deployment).
    # Only failures that speak of the deployment count: timeouts and refused requests,
    # which a tenant can cause at will, never do (router.py).
    allowed_fails: int = Field(default=0, ge=0)

    def problems(self) -> list[tuple[tuple[int | str, ...], str]]:
        """Inconsistencies between groups, each with the location of the field at fault."""
        found: list[tuple[tuple[int | str, ...], str]] = []
        names = [g.name for g in self.model_groups]
        for index, group in enumerate(self.model_groups):
            if names.index(group.name) != index:
                found.append((("model_groups", index, "name"), f"duplicate group {group.name!r}"))
            if group.default and any(g.default for g in self.model_groups[:index]):
                found.append((("model_groups", index, "default"), "another group is default"))
            for position, fallback in enumerate(group.fallbacks):
                where = ("model_groups", index, "fallbacks", position)
                if fallback not in names:
                    found.append((where, f"unknown group {fallback!r}"))
                elif fallback == group.name:
                    found.append((where, "a group cannot fall back to itself"))
        return found

    @property
    def default_group(self) -> ModelGroup:
        return next((g for g in self.model_groups if g.default), self.model_groups[0])

    def group(self, name: str) -> ModelGroup | None:
        return next((g for g in self.model_groups if g.name == name), None)


def _line_of(node: yaml.Node | None, loc: tuple[int | str, ...]) -> int | None:
    """Follow a validation error's location through the YAML node tree to its line."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next((v for k, v in node.value if k.value == part), None)
            if match is None:
                key = next((k for k, _ in node.value if k.value == part), None)
                return key.start_mark.line + 1 if key is not None else line
            node = match
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                return line
            node = node.value[part]
        else:
            break
        line = node.start_mark.line + 1
    return line


def _field_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def parse_routing(text: str, source: str) -> RoutingConfig:
    """Validate a routing file's text; ConfigurationError names the line and field."""
    try:
        root = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise ConfigurationError(f"PLUME_MODELS_FILE: {where}: {problem}") from None
    if not isinstance(data, Mapping):
        raise ConfigurationError(
            f"PLUME_MODELS_FILE: {source}: expected a mapping with model_groups"
        )
    try:
        config = RoutingConfig.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "missing":
            message = "is required"
        raise _located(root, source, tuple(error["loc"]), message) from None
    for loc, message in config.problems()[:1]:
        raise _located(root, source, loc, message)
    return config


def _located(
    root: yaml.Node | None, source: str, loc: tuple[int | str, ...], message: str
) -> ConfigurationError:
    line = _line_of(root, loc)
    where = f"{source}:{line}" if line else source
    return ConfigurationError(
        f"PLUME_MODELS_FILE: {where}: {_field_path(loc) or '(file)'}: {message}"
    )


def load_routing_file(path: Path) -> RoutingConfig:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"PLUME_MODELS_FILE: cannot read {path}: {exc.strerror}") from None
    return parse_routing(text, str(path))


# The operator's classification of the providers it knows, used when no file is given.
# Prices are EUR per million tokens, list prices rounded up (November 2026).
_BUILTIN_PROVIDERS: list[dict[str, Any]] = [
    {
        "env": "ALBERT_API_KEY",
        "group": "sovereign",
        "deployment": {
            "model": "openai/albert-large",
            "provider": "albert",
            "api_base": "https://albert.api.etalab.gouv.fr/v1",
            "hosting": "fr",
            "price_per_million_tokens": {"input": 0, "output": 0},
        },
    },
    {
        "env": "OVHCLOUD_API_KEY",
        "group": "sovereign",
        "deployment": {
            "model": "openai/Mistral-Small-3.2-24B-Instruct-2506",
            "provider": "ovhcloud",
            "api_base": "https://oai.endpoints.kepler.ai.cloud.ovh.net/v1",
            "hosting": "fr",
            "price_per_million_tokens": {"input": 0.1, "output": 0.3},
            "impact": {"total_params_b": 24, "zone": "FRA"},
        },
    },
    {
        "env": "SCALEWAY_API_KEY",
        "group": "sovereign",
        "deployment": {
            "model": "openai/mistral-small-3.2-24b-instruct-2506",
            "provider": "scaleway",
            "api_base": "https://api.scaleway.ai/v1",
            "hosting": "fr",
            "price_per_million_tokens": {"input": 0.15, "output": 0.35},
            "impact": {"total_params_b": 24, "zone": "FRA"},
        },
    },
    {
        "env": "MISTRAL_API_KEY",
        "group": "standard",
        "deployment": {
            "model": "mistral/mistral-small-latest",
            "hosting": "eu",
            "price_per_million_tokens": {"input": 0.1, "output": 0.3},
        },
    },
    {
        "env": "OPENAI_API_KEY",
        "group": "standard",
        "deployment": {
            "model": "openai/gpt-4o-mini",
            "hosting": "non_eu",
            "price_per_million_tokens": {"input": 0.15, "output": 0.6},
        },
    },
    {
        "env": "ANTHROPIC_API_KEY",
        "group": "standard",
        "deployment": {
            "model": "anthropic/claude-haiku-4-5",
            "hosting": "non_eu",
            "price_per_million_tokens": {"input": 0.95, "output": 4.75},
        },
    },
]

OFFLINE_DEPLOYMENT: dict[str, Any] = {
    "model": OFFLINE_MODEL,
    "provider": OFFLINE_PROVIDER,
    "hosting": "fr",
    "price_per_million_tokens": {"input": 0, "output": 0},
}


def builtin_config(environ: Mapping[str, str] | None = None) -> RoutingConfig:
    """Every provider whose key is in the environment, then the offline provider.

    `standard` (EU and beyond, by the operator's classing) falls back to `sovereign`
    (French hosting), which falls back to `offline`; the offline provider alone serves when
    no key is set at all.
    """
    environ = os.environ if environ is None else environ
    groups: dict[str, list[dict[str, Any]]] = {"standard": [], "sovereign": []}
    for provider in _BUILTIN_PROVIDERS:
        if environ.get(provider["env"]):
            groups[provider["group"]].append(
                {**provider["deployment"], "api_key_env": provider["env"]}
            )
        else:
            logger.info("provider_skipped", env=provider["env"], reason="variable unset")
    model_groups: list[dict[str, Any]] = []
    names = [name for name in ("standard", "sovereign") if groups[name]]
    for index, name in enumerate(names):
        model_groups.append(
            {
                "name": name,
                "default": index == 0,
                "fallbacks": [*names[index + 1 :], "offline"],
                "deployments": groups[name],
            }
        )
    model_groups.append(
        {"name": "offline", "default": not names, "deployments": [OFFLINE_DEPLOYMENT]}
    )
    return RoutingConfig.model_validate({"model_groups": model_groups})


def load_routing(
    models_file: Path | None, environ: Mapping[str, str] | None = None
) -> RoutingConfig:
    return load_routing_file(models_file) if models_file is not None else builtin_config(environ)
