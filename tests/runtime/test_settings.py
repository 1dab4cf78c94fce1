"""Settings from the environment: the secret, the body limit, and invalid values named."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from plume.config import ConfigurationError, load_settings
from tests.support.settings import TEST_SECRET


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No PLUME_ variable but those a test sets; the working directory is a scratch one."""
    for name in list(os.environ):
        if name.startswith("PLUME_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return monkeypatch


def configuration_error() -> str:
    with pytest.raises(ConfigurationError) as raised:
        load_settings()
    message = str(raised.value)
    assert message.strip()
    assert "\n" not in message.strip()
    return message


def test_production_requires_a_secret(environment: pytest.MonkeyPatch, tmp_path: Path) -> None:
    environment.setenv("PLUME_ENV", "production")
    environment.setenv("PLUME_STATE_DIR", str(tmp_path / "state"))
    assert "PLUME_SECRET_KEY" in configuration_error()
    assert not (tmp_path / "state" / "secret").exists()


@pytest.mark.parametrize("env", ["production", "development"])
@pytest.mark.parametrize(
    "secret",
    [
        pytest.param("short-secret", id="short"),
        pytest.param("x" * 31, id="31-chars"),
        pytest.param("a" * 48, id="one-character"),
        pytest.param("ab" * 24, id="two-characters"),
    ],
)
def test_weak_secrets_are_refused(environment: pytest.MonkeyPatch, env: str, secret: str) -> None:
    environment.setenv("PLUME_ENV", env)
    environment.setenv("PLUME_SECRET_KEY", secret)
    message = configuration_error()
    assert "PLUME_SECRET_KEY" in message
    assert secret not in message


def test_a_strong_secret_is_used_as_given(environment: pytest.MonkeyPatch) -> None:
    environment.setenv("PLUME_ENV", "production")
    environment.setenv("PLUME_SECRET_KEY", TEST_SECRET)
    settings = load_settings()
    assert settings.secret_key is not None
    assert settings.secret_key.get_secret_value() == TEST_SECRET


@pytest.mark.parametrize("env", [None, "development"])
def test_development_generates_one_shared_secret(
    environment: pytest.MonkeyPatch, tmp_path: Path, env: str | None
) -> None:
    if env is not None:
        environment.setenv("PLUME_ENV", env)
    state = tmp_path / "state" / "nested"
    environment.setenv("PLUME_STATE_DIR", str(state))

    first = load_settings()
    assert first.secret_key is not None
    secret = first.secret_key.get_secret_value()
    assert len(secret) >= 32
    path = state / "secret"
    assert path.read_text().strip() == secret
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

    second = load_settings()
    assert second.secret_key is not None
    assert second.secret_key.get_secret_value() == secret

    # Another state directory gets its own, random, secret.
    environment.setenv("PLUME_STATE_DIR", str(tmp_path / "elsewhere"))
    other = load_settings().secret_key
    assert other is not None
    assert other.get_secret_value() != secret


@pytest.mark.parametrize("value", ["lots", "0", "-5", "1.5"])
def test_invalid_max_body_bytes_is_named(environment: pytest.MonkeyPatch, value: str) -> None:
    environment.setenv("PLUME_SECRET_KEY", TEST_SECRET)
    environment.setenv("PLUME_MAX_BODY_BYTES", value)
    assert "PLUME_MAX_BODY_BYTES" in configuration_error()


def test_max_body_bytes_defaults_to_one_mebibyte(environment: pytest.MonkeyPatch) -> None:
    environment.setenv("PLUME_SECRET_KEY", TEST_SECRET)
    assert load_settings().max_body_bytes == 1024 * 1024
    environment.setenv("PLUME_MAX_BODY_BYTES", "2048")
    assert load_settings().max_body_bytes == 2048


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PLUME_ENV", "staging"),
        ("PLUME_DATABASE_URL", "mysql://root@localhost/plume"),
    ],
)
def test_other_invalid_settings_are_named(
    environment: pytest.MonkeyPatch, name: str, value: str
) -> None:
    environment.setenv("PLUME_SECRET_KEY", TEST_SECRET)
    environment.setenv(name, value)
    assert name in configuration_error()


def test_a_plain_postgresql_url_uses_psycopg(environment: pytest.MonkeyPatch) -> None:
    environment.setenv("PLUME_SECRET_KEY", TEST_SECRET)
    environment.setenv("PLUME_DATABASE_URL", "postgresql://plume@db.example/plume")
    assert load_settings().database_url == "postgresql+psycopg://plume@db.example/plume"
