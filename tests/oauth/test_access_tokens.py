"""Access tokens on the bearer path: a token Plume did not sign as it signs (tampered,
expired, another issuer or audience, an unknown key, `alg` none, HS256 keyed with the public
key) is refused as a bad key is; the JWKS verifies a real one; during a rotation both keys
are published and a token of the previous key still works; the server's metadata."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from httpx import AsyncClient
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet
from pydantic import SecretStr

from plume.oauth import tokens
from plume.oauth.tokens import derived_private_key, signing_keys
from tests.credentials.helpers import Tenant
from tests.oauth.helpers import (
    access_token,
    b64,
    create_client,
    unverified,
)
from tests.support.clients import AppFactory, bearer, client_for
from tests.support.problems import assert_problem
from tests.support.settings import TEST_SECRET, make_settings


def pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def new_pem() -> str:
    return pem(ec.generate_private_key(ec.SECP256R1()))


def signed(claims: dict[str, Any], key: ec.EllipticCurvePrivateKey, **header: Any) -> str:
    jwk = ECKey.import_key(key)
    protected = {"alg": "ES256", "kid": jwk.thumbprint(), "typ": "at+jwt", **header}
    return jwt.encode(protected, claims, jwk, algorithms=["ES256"])


def unsigned(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    parts = [b64(json.dumps(header).encode()), b64(json.dumps(claims).encode())]
    return ".".join([*parts, b64(signature)])


async def refused(client: AsyncClient, token: str) -> dict[str, Any]:
    return assert_problem(
        await client.get("/v1/organization", headers=bearer(token)), 401, "unauthenticated"
    )


async def test_a_real_token_acts_as_a_key_of_its_role(client: AsyncClient, tenant: Tenant) -> None:
    created = await create_client(client, tenant.admin)
    token = await access_token(client, created)
    answer = await client.get("/v1/organization", headers=bearer(token))
    assert answer.status_code == 200, answer.text
    assert answer.json()["id"] == str(tenant.commune.id)


async def test_forged_tokens_are_refused(client: AsyncClient, tenant: Tenant) -> None:
    created = await create_client(client, tenant.admin)
    token = await access_token(client, created)
    header, claims = unverified(token)
    ours = derived_private_key(TEST_SECRET)
    now = int(datetime.now(UTC).timestamp())

    # One character of the signature, or of the claims, changed.
    head, body, signature = token.split(".")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    await refused(client, f"{head}.{body}.{flipped}")
    richer = b64(json.dumps({**claims, "role": "tenant_admin"}).encode())
    await refused(client, f"{head}.{richer}.{signature}")

    # Expired (signed by Plume's own key, long ago).
    old = {**claims, "iat": now - 3600, "exp": now - 3000}
    problem = await refused(client, signed(old, ours))
    assert "expiré" in problem["detail"]
    # Another issuer, another audience, a lifetime over ten minutes, no type.
    await refused(client, signed({**claims, "iss": "https://ailleurs.example"}, ours))
    await refused(client, signed({**claims, "aud": "https://ailleurs.example/v1"}, ours))
    await refused(client, signed({**claims, "iat": now, "exp": now + 3600}, ours))
    await refused(client, signed(claims, ours, typ="JWT"))
    # A key Plume does not know, under Plume's kid or its own.
    stranger = ec.generate_private_key(ec.SECP256R1())
    await refused(client, signed(claims, stranger))
    await refused(client, signed(claims, stranger, kid=header["kid"]))

    # alg none.
    await refused(client, unsigned({"alg": "none", "typ": "at+jwt"}, claims))
    await refused(client, unsigned({"alg": "none", "kid": header["kid"], "typ": "at+jwt"}, claims))
    # HS256 keyed with the public key (the JWKS's, or its PEM): the confusion attack.
    public_pem = ours.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    hs_header = {"alg": "HS256", "kid": header["kid"], "typ": "at+jwt"}
    for secret in (public_pem, json.dumps(signing_keys(make_settings()).jwks()).encode()):
        signing_input = f"{b64(json.dumps(hs_header).encode())}.{b64(json.dumps(claims).encode())}"
        mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        await refused(client, f"{signing_input}.{b64(mac)}")


async def test_a_token_for_another_client_or_organisation_is_refused(
    client: AsyncClient, tenant: Tenant
) -> None:
    created = await create_client(client, tenant.admin)
    _, claims = unverified(await access_token(client, created))
    ours = derived_private_key(TEST_SECRET)
    await refused(client, signed({**claims, "sub": "plc_" + "Z" * 22}, ours))
    await refused(client, signed({**claims, "org": "00000000-0000-4000-8000-000000000000"}, ours))
    await refused(client, signed({**claims, "role": "tenant_admin"}, ours))


async def test_the_jwks_verifies_a_token_with_joserfc(client: AsyncClient, tenant: Tenant) -> None:
    created = await create_client(client, tenant.admin)
    token = await access_token(client, created)
    response = await client.get("/oauth/jwks.json")
    assert response.status_code == 200
    published = response.json()
    assert len(published["keys"]) == 1
    assert all("d" not in key for key in published["keys"])  # never a private member
    decoded = jwt.decode(token, KeySet.import_key_set(published), algorithms=["ES256"])
    assert decoded.claims["sub"] == created.client_id


async def test_during_a_rotation_both_keys_verify(
    make_app: AppFactory, client: AsyncClient, tenant: Tenant
) -> None:
    old, new = new_pem(), new_pem()
    before = make_settings(make_app.settings.database_url, oauth_signing_key=SecretStr(old))
    during = make_settings(
        make_app.settings.database_url,
        oauth_signing_key=SecretStr(new),
        oauth_previous_signing_keys=old,  # as the environment gives it
    )
    created = await create_client(client, tenant.admin)
    async with client_for(make_app(settings=before)) as first:
        old_token = await access_token(first, created)
    async with client_for(make_app(settings=during)) as second:
        published = (await second.get("/oauth/jwks.json")).json()
        assert len(published["keys"]) == 2
        kids = [key["kid"] for key in published["keys"]]
        new_token = await access_token(second, created)
        assert unverified(new_token)[0]["kid"] == kids[0]
        assert unverified(old_token)[0]["kid"] == kids[1]
        for token in (old_token, new_token):
            answer = await second.get("/v1/organization", headers=bearer(token))
            assert answer.status_code == 200, answer.text
            jwt.decode(token, KeySet.import_key_set(published), algorithms=["ES256"])
    # After it, the old key's tokens are refused; and the derived key's too.
    after = make_settings(make_app.settings.database_url, oauth_signing_key=SecretStr(new))
    async with client_for(make_app(settings=after)) as third:
        await refused(third, old_token)
        await refused(third, await access_token(client, created))
        assert (await third.get("/v1/organization", headers=bearer(new_token))).status_code == 200


def test_a_signing_key_setting_must_be_a_p256_private_key() -> None:
    from plume.config import ConfigurationError, load_settings

    with pytest.MonkeyPatch.context() as env:
        env.setenv("PLUME_OAUTH_SIGNING_KEY", "not a key")
        with pytest.raises(ConfigurationError) as raised:
            load_settings()
    assert "PLUME_OAUTH_SIGNING_KEY" in str(raised.value)
    assert "not a key" not in str(raised.value)


def test_every_process_derives_the_same_key_from_the_secret() -> None:
    first = signing_keys(make_settings()).jwks()
    tokens._signing_keys.cache_clear()
    assert signing_keys(make_settings()).jwks() == first


async def test_the_metadata_of_the_authorization_server(client: AsyncClient) -> None:
    response = await client.get("/.well-known/oauth-authorization-server")
    assert response.status_code == 200
    metadata = response.json()
    assert metadata["issuer"] == "http://127.0.0.1:8000"
    assert metadata["token_endpoint"] == "http://127.0.0.1:8000/oauth/token"
    assert metadata["jwks_uri"] == "http://127.0.0.1:8000/oauth/jwks.json"
    assert metadata["grant_types_supported"] == ["client_credentials"]
    assert set(metadata["token_endpoint_auth_methods_supported"]) == {
        "client_secret_basic",
        "client_secret_post",
    }
    assert "response_types_supported" in metadata


async def test_the_issuer_is_the_public_url(make_app: AppFactory, tenant: Tenant) -> None:
    settings = make_settings(make_app.settings.database_url, public_url="https://plume.example.fr")
    async with client_for(make_app(settings=settings)) as http:
        metadata = (await http.get("/.well-known/oauth-authorization-server")).json()
        assert metadata["issuer"] == "https://plume.example.fr"
        assert metadata["token_endpoint"] == "https://plume.example.fr/oauth/token"
        created = await create_client(http, tenant.admin)
        _, claims = unverified(await access_token(http, created))
        assert claims["iss"] == "https://plume.example.fr"
        assert claims["aud"] == "https://plume.example.fr/v1"
    from plume.errors import DEFAULT_PUBLIC_URL, set_public_url

    set_public_url(DEFAULT_PUBLIC_URL)


def test_tokens_expire_within_ten_minutes() -> None:
    assert tokens.MAX_LIFETIME_S == 600
    assert timedelta(seconds=make_settings().oauth_token_ttl_s) <= timedelta(minutes=10)
