"""Sign-in settings: off without an issuer, named when wrong, required in production."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from plume.config import ConfigurationError, load_settings
from tests.support.settings import TEST_SECRET


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.startswith("PLUME_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return monkeypatch


def refusal(*, serving: bool = False) -> str:
    with pytest.raises(ConfigurationError) as raised:
        load_settings(serving=serving)
    return str(raised.value)


def test_sign_in_is_off_without_an_issuer(environment: pytest.MonkeyPatch) -> None:
    settings = load_settings()
    assert not settings.sign_in_enabled
    assert settings.oidc_scopes == "openid email given_name usual_name siret"


def test_an_issuer_needs_a_client_id(environment: pytest.MonkeyPatch) -> None:
    environment.setenv("PLUME_OIDC_ISSUER", "https://auth.agentconnect.gouv.fr/api/v2/")
    assert refusal().startswith("PLUME_OIDC_CLIENT_ID")
    environment.setenv("PLUME_OIDC_CLIENT_ID", "plume")
    settings = load_settings()
    assert settings.oidc_issuer == "https://auth.agentconnect.gouv.fr/api/v2"


@pytest.mark.parametrize(
    ("name", "value"),
    [("PLUME_OIDC_ISSUER", "auth.agentconnect.gouv.fr"), ("PLUME_OIDC_SCOPES", "email siret")],
)
def test_wrong_values_are_named(environment: pytest.MonkeyPatch, name: str, value: str) -> None:
    environment.setenv("PLUME_OIDC_CLIENT_ID", "plume")
    environment.setenv(name, value)
    assert refusal().startswith(name)


def test_production_names_what_sign_in_lacks(environment: pytest.MonkeyPatch) -> None:
    environment.setenv("PLUME_ENV", "production")
    environment.setenv("PLUME_SECRET_KEY", TEST_SECRET)
    environment.setenv("PLUME_METRICS_PORT", "9464")
    environment.setenv("PLUME_OIDC_ISSUER", "https://auth.agentconnect.gouv.fr/api/v2")
    environment.setenv("PLUME_OIDC_CLIENT_ID", "plume")
    message = refusal(serving=True)
    assert "PLUME_PUBLIC_URL" in message
    assert "PLUME_OIDC_CLIENT_SECRET" in message
    assert message.endswith("are required in production")
    environment.setenv("PLUME_PUBLIC_URL", "https://plume.example.fr")
    environment.setenv("PLUME_OIDC_CLIENT_SECRET", "a-client-secret")
    assert load_settings(serving=True).sign_in_enabled
