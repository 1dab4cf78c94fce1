"""The OpenID Connect relying party: ProConnect, or any provider that publishes a discovery
document. Authlib makes the authorization request (PKCE S256, state, nonce) and exchanges
the code; joserfc checks the ID token's signature against the provider's JWKS and Authlib's
claims classes its iss, aud, exp and nonce. ProConnect answers userinfo as a signed JWT
(`application/jwt`), checked against the same keys; other providers answer plain JSON.

Nothing here is logged: codes, tokens and claims are secrets or personal data.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from typing import Any

import httpx
from authlib.common.security import generate_token
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry

from plume.config import Settings

with warnings.catch_warnings():
    # Authlib 1.9 deprecates this integration in favour of httpx2, which Plume does not use;
    # the warning would otherwise open the output of every `plume` command.
    warnings.filterwarnings("ignore", message="The httpx module is deprecated")
    from authlib.integrations.httpx_client import AsyncOAuth2Client

CALLBACK_PATH = "/auth/callback"
# How long the discovery document and the keys are kept before being read again; an
# unknown key id reads the keys again at once (the provider rotated them).
METADATA_TTL_S = 3600.0
HTTP_TIMEOUT_S = 10.0
# Clocks drift: the ID token's times are checked with this margin.
LEEWAY_S = 60
# Random values of the authorization request: 48 characters of base64url each (>= 32).
TOKEN_LENGTH = 48


class ProviderError(Exception):
    """The provider could not be reached, or answered something that does not hold
    (bad signature, wrong issuer, audience or nonce, expired token). The message names
    the check, never a token."""


@dataclass(frozen=True, slots=True)
class AuthorizationRequest:
    """Where to send the browser, and what the callback must find again."""

    url: str
    state: str
    nonce: str
    code_verifier: str


@dataclass(frozen=True, slots=True)
class ProviderIdentity:
    """Who the provider says signed in (ID token and userinfo together)."""

    issuer: str
    subject: str
    email: str | None
    given_name: str | None
    usual_name: str | None
    siret: str | None
    acr: str | None
    id_token: str


def _text(value: object) -> str | None:
    if isinstance(value, str) and value.strip():
        return " ".join(value.split())
    return None


class OidcProvider:
    """One provider (PLUME_OIDC_ISSUER), built once by the application."""

    def __init__(self, settings: Settings, *, public_url: str) -> None:
        if settings.oidc_issuer is None or settings.oidc_client_id is None:
            raise ValueError("sign-in is off: no PLUME_OIDC_ISSUER")
        self.issuer = settings.oidc_issuer
        self.client_id = settings.oidc_client_id
        secret = settings.oidc_client_secret
        self._client_secret = secret.get_secret_value() if secret is not None else None
        self.scopes = settings.oidc_scopes
        self.redirect_uri = public_url.rstrip("/") + CALLBACK_PATH
        self._metadata: dict[str, Any] | None = None
        self._jwks: dict[str, Any] | None = None
        self._read_at = 0.0

    def _client(self, **kwargs: Any) -> AsyncOAuth2Client:
        return AsyncOAuth2Client(
            client_id=self.client_id,
            client_secret=self._client_secret,
            scope=self.scopes,
            redirect_uri=self.redirect_uri,
            code_challenge_method="S256",
            token_endpoint_auth_method="client_secret_post",  # noqa: S106 (a method's name)
            timeout=HTTP_TIMEOUT_S,
            **kwargs,
        )

    async def _get_json(self, url: str) -> dict[str, Any]:
        try:
            async with httpx.AsyncClient(timeout=HTTP_TIMEOUT_S) as http:
                response = await http.get(url)
                response.raise_for_status()
                body = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise ProviderError(f"provider unreachable or invalid answer: {url}") from exc
        if not isinstance(body, dict):
            raise ProviderError(f"not a JSON object: {url}")
        return body

    async def metadata(self) -> dict[str, Any]:
        """The discovery document, whose issuer must be the one configured."""
        if self._metadata is None or time.monotonic() - self._read_at > METADATA_TTL_S:
            metadata = await self._get_json(self.issuer + "/.well-known/openid-configuration")
            if str(metadata.get("issuer", "")).rstrip("/") != self.issuer:
                raise ProviderError("the discovery document names another issuer")
            for field in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
                if not isinstance(metadata.get(field), str):
                    raise ProviderError(f"the discovery document has no {field}")
            self._metadata, self._jwks, self._read_at = metadata, None, time.monotonic()
        return self._metadata

    async def _keys(self, *, refresh: bool = False) -> KeySet:
        if self._jwks is None or refresh:
            self._jwks = await self._get_json((await self.metadata())["jwks_uri"])
        try:
            return KeySet.import_key_set(self._jwks)  # type: ignore[arg-type]
        except (JoseError, ValueError, TypeError) as exc:
            raise ProviderError("the provider's JWKS cannot be read") from exc

    async def _decode(self, token: str, algorithms: list[str]) -> jwt.Token:
        """A signed JWT of the provider's, its signature checked; the keys are read again
        once if none fits (a rotation)."""
        registry = JWSRegistry(algorithms=algorithms, strict_check_header=False)
        for refresh in (False, True):
            keys = await self._keys(refresh=refresh)
            try:
                return jwt.decode(token, keys, registry=registry)
            except InvalidKeyIdError as exc:
                # A token without a key id, when the provider publishes several keys: the
                # one whose signature holds.
                for key in keys.keys:
                    try:
                        return jwt.decode(token, key, registry=registry)
                    except JoseError:
                        continue
                if refresh:
                    raise ProviderError(f"signature refused ({exc.error})") from exc
            except JoseError as exc:
                if refresh:
                    raise ProviderError(f"signature refused ({exc.error})") from exc
        raise AssertionError("unreachable")

    async def authorization(self) -> AuthorizationRequest:
        metadata = await self.metadata()
        state, nonce = generate_token(TOKEN_LENGTH), generate_token(TOKEN_LENGTH)
        verifier = generate_token(TOKEN_LENGTH + 16)
        async with self._client() as client:
            url, _ = client.create_authorization_url(
                metadata["authorization_endpoint"], state=state, code_verifier=verifier, nonce=nonce
            )
        return AuthorizationRequest(url, state, nonce, verifier)

    async def identify(self, code: str, code_verifier: str, nonce: str) -> ProviderIdentity:
        """Exchange the code, check the ID token, read userinfo: who signed in."""
        metadata = await self.metadata()
        async with self._client() as client:
            try:
                token = await client.fetch_token(
                    metadata["token_endpoint"],
                    grant_type="authorization_code",
                    code=code,
                    code_verifier=code_verifier,
                )
            except Exception as exc:  # Authlib's OAuth errors and httpx's, alike
                # The error's kind only: its text may quote the provider's answer.
                raise ProviderError(f"the code exchange failed ({type(exc).__name__})") from exc
            id_token = token.get("id_token")
            if not isinstance(id_token, str):
                raise ProviderError("the token answer has no id_token")
            claims = await self._id_token_claims(metadata, id_token, nonce, token)
            userinfo = await self._userinfo(client, metadata, claims["sub"])
        merged = {**claims, **userinfo}
        return ProviderIdentity(
            issuer=self.issuer,
            subject=str(claims["sub"]),
            email=_text(merged.get("email")),
            given_name=_text(merged.get("given_name")),
            usual_name=_text(merged.get("usual_name")) or _text(merged.get("family_name")),
            siret=_text(merged.get("siret")),
            acr=_text(claims.get("acr")),
            id_token=id_token,
        )

    async def _id_token_claims(
        self, metadata: dict[str, Any], id_token: str, nonce: str, token: dict[str, Any]
    ) -> dict[str, Any]:
        algorithms = metadata.get("id_token_signing_alg_values_supported") or ["RS256"]
        decoded = await self._decode(id_token, [a for a in algorithms if a != "none"])
        claims = CodeIDToken(
            decoded.claims,
            decoded.header,
            {
                "iss": {"essential": True, "values": [self.issuer]},
                "aud": {"essential": True, "values": [self.client_id]},
            },
            {"nonce": nonce, "client_id": self.client_id, "access_token": token["access_token"]},
        )
        try:
            claims.validate(leeway=LEEWAY_S)
        except JoseError as exc:
            raise ProviderError(f"ID token refused ({exc.error})") from exc
        return dict(claims)

    async def _userinfo(
        self, client: AsyncOAuth2Client, metadata: dict[str, Any], subject: object
    ) -> dict[str, Any]:
        """The userinfo claims, from a signed JWT (ProConnect) or plain JSON; they must be
        about the ID token's subject."""
        url = metadata.get("userinfo_endpoint")
        if not isinstance(url, str):
            return {}
        try:
            response = await client.get(url)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise ProviderError("userinfo unreachable") from exc
        media_type = response.headers.get("content-type", "").split(";")[0].strip()
        if media_type == "application/jwt":
            algorithms = metadata.get("userinfo_signing_alg_values_supported") or ["RS256", "ES256"]
            decoded = await self._decode(response.text.strip(), list(algorithms))
            info = dict(decoded.claims)
            if "iss" in info and str(info["iss"]).rstrip("/") != self.issuer:
                raise ProviderError("userinfo from another issuer")
            audience = info.get("aud")
            if audience is not None and self.client_id not in (
                audience if isinstance(audience, list) else [audience]
            ):
                raise ProviderError("userinfo for another client")
        else:
            try:
                info = response.json()
            except ValueError as exc:
                raise ProviderError("userinfo is neither JSON nor a JWT") from exc
            if not isinstance(info, dict):
                raise ProviderError("userinfo is not an object")
        if info.get("sub") != subject:
            raise ProviderError("userinfo about another subject")
        return info

    async def logout_url(self, id_token: str | None, post_logout_redirect_uri: str) -> str | None:
        """The provider's end-session address for this sign-out, if it has one."""
        try:
            endpoint = (await self.metadata()).get("end_session_endpoint")
        except ProviderError:
            return None
        if not isinstance(endpoint, str):
            return None
        params = {"post_logout_redirect_uri": post_logout_redirect_uri, "state": generate_token(32)}
        if id_token:
            params["id_token_hint"] = id_token
        return str(httpx.URL(endpoint, params=params))
