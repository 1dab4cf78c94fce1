"""Plume's settings, read once from the environment (prefix PLUME_)."""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Self

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

MIN_SECRET_LENGTH = 32
_PEM_BLOCK = re.compile(r"-----BEGIN [A-Z ]+-----.+?-----END [A-Z ]+-----", re.DOTALL)
_WEAK_SECRETS = {"changethis", "changeme", "secret", "password", "plume"}


class Environment(StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


class ConfigurationError(Exception):
    """A setting is missing or invalid; the message is one line naming it."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PLUME_", extra="ignore", frozen=True)

    env: Environment = Environment.DEVELOPMENT
    database_url: str | None = None
    secret_key: SecretStr | None = None
    # Secrets used before the current one, newest first: keys hashed with them still
    # authenticate and are re-hashed with the current secret on use (see docs/operations.md).
    previous_secret_keys: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    state_dir: Path = Path(".plume")
    models_file: Path | None = None
    metrics_token: SecretStr | None = None
    # /metrics on a port of its own (plume serve), on an internal address, instead of the API's.
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    metrics_host: str = "127.0.0.1"
    # The address clients reach Plume at (problem types link to its /problems/ pages);
    # `plume serve` defaults it to the address it listens on.
    public_url: str | None = None
    # /docs (Swagger UI, served from Plume's own assets) and /openapi.json.
    docs: bool = True
    # Proxies whose X-Forwarded-For / X-Forwarded-Proto are believed (plume serve): addresses
    # or networks, comma-separated; none by default, and "*" trusts every peer.
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    max_body_bytes: int = Field(default=1024 * 1024, gt=0)
    synthese_max_body_bytes: int = Field(default=8 * 1024 * 1024, gt=0)
    # A long synthèse's parts summarised at once: per synthèse, and for all of an
    # organisation's synthèses in one process.
    synthese_concurrency: int = Field(default=8, ge=1, le=64)
    synthese_organization_concurrency: int = Field(default=8, ge=1, le=256)
    db_pool_size: int = Field(default=10, ge=1, le=200)
    db_pool_timeout_s: float = Field(default=5.0, gt=0)
    # A statement running longer, or a transaction left idle longer, is cut by PostgreSQL
    # (0: never). Set on every connection of the service, whatever role it switches to.
    db_statement_timeout_s: float = Field(default=30.0, ge=0)
    db_idle_in_transaction_timeout_s: float = Field(default=60.0, ge=0)
    drain_timeout_s: int = Field(default=30, ge=0)
    # On SIGTERM, /readyz fails at once and `plume serve` accepts requests this long before
    # its drain: a load balancer probing /readyz stops sending it any (plume.runtime.draining).
    drain_delay_s: float = Field(default=0.0, ge=0, le=300)
    # Load the pseudonymisation's model at start, ready only once it is loaded (else on the
    # first request that needs it, which then waits for it: seconds).
    warm_up: bool = False
    # A request's quota reservation is released by the sweep if it is not settled by then
    # (its process died); a synthèse job's reservation lives as long as the job may.
    quota_reservation_ttl_s: int = Field(default=900, ge=60)
    quota_job_reservation_ttl_s: int = Field(default=6 * 3600, ge=60)
    quota_sweep_interval_s: float = Field(default=30.0, gt=0)
    # The gauges (quota use, organisations, the synthèse queue) are refreshed from the
    # database this often, per process.
    quota_gauge_interval_s: float = Field(default=15.0, gt=0)
    # Drafts past their organisation's retention_days are erased daily, the first time this
    # long after start-up (a process restarted more often than daily still purges).
    retention_interval_s: float = Field(default=86_400.0, gt=0)
    retention_first_run_s: float = Field(default=600.0, ge=0)
    # The audit trail keeps a caller's full IP address this long (for investigations); its
    # network (/24, /48) stays in the hashed entry.
    audit_address_days: int = Field(default=30, ge=1, le=3650)
    # Every provider call (its attempts, retries and fallbacks; a stream to its last word).
    provider_deadline_s: float = Field(default=300.0, gt=0, le=3600)
    # A comment line on every Server-Sent Events stream after this long without a byte.
    sse_keepalive_s: float = Field(default=15.0, gt=0, le=300)
    # The longest life of a key minted through the API (days); a key asked without an expiry
    # gets this one. None: keys may live until revoked.
    api_key_max_days: int | None = Field(default=None, ge=1, le=3650)
    # The private key OAuth2 access tokens are signed with (PEM, EC P-256; a secret), the
    # same in every process; unset, it is derived from PLUME_SECRET_KEY. The previous keys
    # (PEM blocks, newest first) still verify the tokens they signed during a rotation and
    # are published with it (docs/identity.md, docs/decisions/0010).
    oauth_signing_key: SecretStr | None = None
    oauth_previous_signing_keys: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    # An access token's life (seconds): ten minutes at most.
    oauth_token_ttl_s: int = Field(default=600, ge=30, le=600)
    log_level: str = "INFO"
    # ProConnect (or any OpenID Connect provider) for agents: without an issuer, sign-in is
    # off and everything else works (docs/identity.md).
    oidc_issuer: str | None = None
    oidc_client_id: str | None = None
    oidc_client_secret: SecretStr | None = None
    # ProConnect's scopes; names come from given_name and usual_name (family_name elsewhere).
    oidc_scopes: str = "openid email given_name usual_name siret"
    # An agent's session ends after this long without a request, and this long after sign-in.
    session_idle_s: int = Field(default=8 * 3600, ge=60)
    session_max_s: int = Field(default=12 * 3600, ge=60)

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_proxies(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _check_proxies(cls, value: list[str]) -> list[str]:
        for item in value:
            if item == "*":
                continue
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"not an IP address or network: {item}") from None
        return value

    @field_validator("public_url")
    @classmethod
    def _check_public_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", value):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")

    @field_validator("oidc_issuer")
    @classmethod
    def _check_issuer(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not re.fullmatch(r"https?://[^\s?#]+", value):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")

    @field_validator("oidc_scopes")
    @classmethod
    def _check_scopes(cls, value: str) -> str:
        scopes = value.replace(",", " ").split()
        if "openid" not in scopes:
            raise ValueError("must include openid")
        return " ".join(scopes)

    @model_validator(mode="after")
    def _check_oidc_client(self) -> Self:
        if self.oidc_issuer is not None and not self.oidc_client_id:
            raise ValueError("PLUME_OIDC_CLIENT_ID: is required with PLUME_OIDC_ISSUER")
        return self

    @field_validator("previous_secret_keys", mode="before")
    @classmethod
    def _split_secrets(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("oauth_previous_signing_keys", mode="before")
    @classmethod
    def _split_pem_blocks(cls, value: object) -> object:
        if isinstance(value, str):
            return _PEM_BLOCK.findall(value)
        return value

    @field_validator("oauth_signing_key", "oauth_previous_signing_keys")
    @classmethod
    def _check_signing_keys(
        cls, value: SecretStr | list[SecretStr] | None
    ) -> SecretStr | list[SecretStr] | None:
        for key in value if isinstance(value, list) else [value] if value else []:
            if not is_p256_private_key(key.get_secret_value()):
                # Never the value itself: it is a secret.
                raise ValueError("must be an EC P-256 private key in PEM")
        return value

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith(("postgresql+psycopg://", "postgresql://", "postgres://")):
            raise ValueError("must be a postgresql+psycopg:// URL")
        return normalize_database_url(value)

    @model_validator(mode="after")
    def _check_secret(self) -> Self:
        for name, secret in [("secret_key", self.secret_key)] + [
            ("previous_secret_keys", s) for s in self.previous_secret_keys
        ]:
            if secret is None:
                continue
            value = secret.get_secret_value()
            if len(value) < MIN_SECRET_LENGTH:
                raise ValueError(f"PLUME_{name.upper()}: must be at least 32 characters")
            leftover = re.sub(
                "|".join(sorted(_WEAK_SECRETS, key=len, reverse=True)), "", value.lower()
            )
            if len(leftover) < 8 or len(set(value)) < 8:
                raise ValueError(f"PLUME_{name.upper()}: is a well-known or trivial value")
        return self

    @property
    def is_development(self) -> bool:
        return self.env is Environment.DEVELOPMENT

    @property
    def sign_in_enabled(self) -> bool:
        return self.oidc_issuer is not None

    @property
    def is_production(self) -> bool:
        return self.env is Environment.PRODUCTION

    def require_database_url(self) -> str:
        if self.database_url is None:
            raise ConfigurationError("PLUME_DATABASE_URL: is required")
        return self.database_url

    def production_gaps(self, *, serving: bool) -> list[str]:
        """What production needs and is missing: the secret, and to serve, a protected
        /metrics (a token, or a port of its own)."""
        if not self.is_production:
            return []
        gaps = []
        if self.secret_key is None:
            gaps.append("PLUME_SECRET_KEY")
        if serving and self.metrics_token is None and self.metrics_port is None:
            gaps.append("PLUME_METRICS_TOKEN (or PLUME_METRICS_PORT)")
        if serving and self.sign_in_enabled:
            # The provider's redirect URIs are registered at this address.
            if self.public_url is None:
                gaps.append("PLUME_PUBLIC_URL (with PLUME_OIDC_ISSUER)")
            if self.oidc_client_secret is None:
                gaps.append("PLUME_OIDC_CLIENT_SECRET (with PLUME_OIDC_ISSUER)")
        return gaps

    def require_production_settings(self, *, serving: bool) -> None:
        gaps = self.production_gaps(serving=serving)
        if gaps:
            verb = "is" if len(gaps) == 1 else "are"
            raise ConfigurationError(f"{' and '.join(gaps)}: {verb} required in production")

    def require_secret_key(self) -> str:
        if self.secret_key is None:
            raise ConfigurationError("PLUME_SECRET_KEY: is required")
        return self.secret_key.get_secret_value()


def is_p256_private_key(pem: str) -> bool:
    """Whether `pem` is an unencrypted EC P-256 private key (ES256's)."""
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError):
        return False
    return isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1)


def normalize_database_url(url: str) -> str:
    """Use the psycopg 3 driver whatever scheme the operator wrote."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _secret_from_state_dir(state_dir: Path) -> str:
    """Generate the development secret once and share it through the state directory."""
    path = state_dir / "secret"
    if path.exists():
        return path.read_text().strip()
    state_dir.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(48)
    # O_EXCL: when several processes start at once, the first writer wins and others read it.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    return value


def load_settings(*, serving: bool = False) -> Settings:
    """Read the environment; raise ConfigurationError with one line naming the setting
    (`serving`: for `plume serve`, which production holds to more)."""
    try:
        settings = Settings()
    except ValidationError as exc:
        error = exc.errors()[0]
        location = ".".join(str(part) for part in error["loc"])
        message = str(error["msg"]).removeprefix("Value error, ")
        if location:
            message = f"PLUME_{location.upper()}: {message}"
        raise ConfigurationError(message) from None
    settings.require_production_settings(serving=serving)
    if settings.secret_key is None:
        generated = _secret_from_state_dir(settings.state_dir)
        settings = settings.model_copy(update={"secret_key": SecretStr(generated)})
    return settings


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
