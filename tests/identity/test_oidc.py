"""The relying party's checks of an ID token: signature against the provider's JWKS, issuer,
audience, expiry and nonce. Tokens are signed with a key the test provider publishes (its
userinfo key), so that only the claim under test is wrong."""

from __future__ import annotations

import time
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

from plume.config import Settings
from plume.identity.oidc import OidcProvider, ProviderError
from tests.identity.helpers import PUBLIC_URL
from tests.identity.provider import USERINFO_KID, MockProvider

NONCE = "n" * 48


def _claims(provider: MockProvider, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": provider.issuer,
        "sub": "sub-checked",
        "aud": "plume-test",
        "iat": now,
        "exp": now + 300,
        "nonce": NONCE,
        "acr": "eidas1",
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def _signed(provider: MockProvider, claims: dict[str, Any], key: RSAKey | None = None) -> str:
    return jwt.encode({"alg": "RS256", "kid": USERINFO_KID}, claims, key or provider.layer.key)


async def _check(oidc: OidcProvider, token: str, nonce: str = NONCE) -> dict[str, Any]:
    metadata = await oidc.metadata()
    return await oidc._id_token_claims(metadata, token, nonce, {"access_token": "a"})


async def test_a_well_formed_id_token_is_accepted(
    provider: MockProvider, oidc_settings: Settings
) -> None:
    oidc = OidcProvider(oidc_settings, public_url=PUBLIC_URL)
    claims = await _check(oidc, _signed(provider, _claims(provider)))
    assert claims["sub"] == "sub-checked"
    assert claims["acr"] == "eidas1"


@pytest.mark.parametrize(
    ("changes", "nonce"),
    [
        ({"iss": "https://evil.example"}, NONCE),
        ({"aud": "another-client"}, NONCE),
        ({"exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200}, NONCE),
        ({}, "another-nonce-" + "x" * 40),
        ({"nonce": None}, NONCE),
    ],
    ids=["issuer", "audience", "expired", "nonce", "no-nonce"],
)
async def test_a_wrong_claim_is_refused(
    provider: MockProvider, oidc_settings: Settings, changes: dict[str, Any], nonce: str
) -> None:
    oidc = OidcProvider(oidc_settings, public_url=PUBLIC_URL)
    with pytest.raises(ProviderError, match="ID token refused"):
        await _check(oidc, _signed(provider, _claims(provider, **changes)), nonce)


async def test_a_signature_by_an_unknown_key_is_refused(
    provider: MockProvider, oidc_settings: Settings
) -> None:
    oidc = OidcProvider(oidc_settings, public_url=PUBLIC_URL)
    stranger = RSAKey.generate_key(2048, {"kid": USERINFO_KID})
    with pytest.raises(ProviderError, match="signature refused"):
        await _check(oidc, _signed(provider, _claims(provider), stranger))


async def test_an_unsigned_token_is_refused(
    provider: MockProvider, oidc_settings: Settings
) -> None:
    oidc = OidcProvider(oidc_settings, public_url=PUBLIC_URL)
    header = jwt.encode({"alg": "none"}, _claims(provider), None, algorithms=["none"])
    with pytest.raises(ProviderError):
        await _check(oidc, header)
