"""The tests' settings: one server secret, and Settings built without the environment."""

from __future__ import annotations

import secrets

from pydantic import SecretStr

from plume.config import Environment, Settings

TEST_SECRET = "test-secret-" + "k3y" * 10


def make_settings(database_url: str | None = None, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "env": Environment.TEST,
        "database_url": database_url,
        "secret_key": SecretStr(TEST_SECRET),
        "log_level": "WARNING",
    }
    values.update(overrides)
    return Settings.model_validate(values)


def random_secret() -> str:
    """Another server secret (rotation tests)."""
    return secrets.token_urlsafe(40)
