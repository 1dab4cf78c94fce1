"""OAuth2 access tokens: JWTs signed with ES256 (RFC 9068's `at+jwt`), and their
verification on the bearer path.

Every API process signs and verifies with the same keys, whatever process issued a token:
the key is PLUME_OAUTH_SIGNING_KEY, or else derived from PLUME_SECRET_KEY, which every
process shares already (docs/decisions/0010). The previous signing keys still verify the
tokens they signed and are published with the current one (GET /oauth/jwks.json), so that
a rotation refuses no token before it expires.

A token proves who its client was when it was issued, not that the client may still act:
each request bearing one looks the client up in PostgreSQL (`oauth_client_lookup`), as a
key is looked up, so that a revoked client, or a suspended organisation, is refused at once.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet
from joserfc.jwt import JWTClaimsRegistry

from plume.config import Settings
from plume.errors import DEFAULT_PUBLIC_URL
from plume.models import ApiKeyRole, OAuthClient

TOKEN_PATH = "/oauth/token"  # noqa: S105 (a path)
JWKS_PATH = "/oauth/jwks.json"
METADATA_PATH = "/.well-known/oauth-authorization-server"
ALGORITHM = "ES256"
# RFC 9068: the header's `typ`, which tells an access token from any other JWT (an OpenID
# Connect ID token, say) signed by a key Plume trusts.
TOKEN_TYPE = "at+jwt"  # noqa: S105 (a media type)
# A token is at most this old when it expires (seconds); the clocks of the processes may
# differ by this much.
MAX_LIFETIME_S = 600
LEEWAY_S = 30

# header.payload.signature, base64url; far shorter than this.
_JWT_FORMAT = re.compile(r"[A-Za-z0-9_-]{10,2048}\.[A-Za-z0-9_-]{10,4096}\.[A-Za-z0-9_-]{10,1024}")
# The order of P-256's group: a derived private value is in [1, order - 1].
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_DERIVATION_LABEL = b"plume oauth2 access token signing key (ES256), version 1"


def looks_like_jwt(token: str) -> bool:
    """Whether a bearer credential is shaped as a JWT (an API key never is)."""
    return _JWT_FORMAT.fullmatch(token) is not None


def issuer(settings: Settings) -> str:
    """The tokens' `iss`: Plume's public address (PLUME_PUBLIC_URL)."""
    return (settings.public_url or DEFAULT_PUBLIC_URL).rstrip("/")


def audience(settings: Settings) -> str:
    """The tokens' `aud`: Plume's API, under its public address."""
    return issuer(settings) + "/v1"


# --- signing keys ----------------------------------------------------------------------------


def derived_private_key(secret: str) -> ec.EllipticCurvePrivateKey:
    """A P-256 key derived from the server secret: the same in every process that shares it."""
    seed = hmac.new(secret.encode(), _DERIVATION_LABEL, hashlib.sha512).digest()
    return ec.derive_private_key(
        int.from_bytes(seed, "big") % (_P256_ORDER - 1) + 1, ec.SECP256R1()
    )


def _jwk(private: ec.EllipticCurvePrivateKey) -> ECKey:
    """The key as a JWK whose `kid` is its RFC 7638 thumbprint (a digest of the public key:
    the same in every process, and it reveals nothing)."""
    thumbprint = ECKey.import_key(private).thumbprint()
    return ECKey.import_key(private, parameters={"kid": thumbprint, "use": "sig", "alg": ALGORITHM})


def _pem_key(pem: str) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):  # the settings checked it already
        raise TypeError("not an EC private key")
    return key


@dataclass(frozen=True, slots=True)
class SigningKeys:
    """The key that signs, then the previous ones, which only verify."""

    current: ECKey
    previous: tuple[ECKey, ...] = ()

    @property
    def all(self) -> tuple[ECKey, ...]:
        return (self.current, *self.previous)

    def key_set(self) -> KeySet:
        return KeySet(list(self.all))

    def jwks(self) -> dict[str, Any]:
        """The public keys, as a JWK Set (never a private member)."""
        return {"keys": [key.as_dict(private=False) for key in self.all]}


@lru_cache(maxsize=8)
def _signing_keys(
    current_pem: str | None, previous_pems: tuple[str, ...], secret: str
) -> SigningKeys:
    current = _pem_key(current_pem) if current_pem else derived_private_key(secret)
    return SigningKeys(_jwk(current), tuple(_jwk(_pem_key(pem)) for pem in previous_pems))


def signing_keys(settings: Settings) -> SigningKeys:
    """The keys of the settings, built once per process (a derivation and thumbprints)."""
    current = settings.oauth_signing_key
    return _signing_keys(
        current.get_secret_value() if current is not None else None,
        tuple(key.get_secret_value() for key in settings.oauth_previous_signing_keys),
        settings.require_secret_key(),
    )


# --- issuing and verifying -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IssuedToken:
    access_token: str
    expires_in: int
    scope: str


def scope_of(role: ApiKeyRole) -> str:
    """A client's scope is its role: what its tokens may do is what a key of that role may."""
    return role.value


def issue(settings: Settings, client: OAuthClient, now: datetime | None = None) -> IssuedToken:
    """A new access token for `client`, signed with the current key."""
    issued_at = int((now or datetime.now(UTC)).timestamp())
    lifetime = min(settings.oauth_token_ttl_s, MAX_LIFETIME_S)
    key = signing_keys(settings).current
    claims = {
        "iss": issuer(settings),
        "sub": client.client_id,
        "aud": audience(settings),
        "iat": issued_at,
        "exp": issued_at + lifetime,
        "jti": uuid.uuid4().hex,
        "client_id": client.client_id,
        "org": str(client.organization_id),
        "role": client.role.value,
        "scope": scope_of(client.role),
    }
    header = {"alg": ALGORITHM, "kid": key.kid, "typ": TOKEN_TYPE}
    token = jwt.encode(header, claims, key, algorithms=[ALGORITHM])
    return IssuedToken(token, lifetime, scope_of(client.role))


@dataclass(frozen=True, slots=True)
class TokenClaims:
    """What a valid token says: which client, for which organisation, with which role."""

    client_id: str
    organization_id: uuid.UUID
    role: str


class InvalidToken(Exception):
    """The token is not one Plume issued, or no longer valid; the message (French) says why,
    without echoing the token."""


def verify(settings: Settings, token: str, now: datetime | None = None) -> TokenClaims:
    """The token's claims, if its signature (by a current or previous key, ES256 only), type,
    issuer, audience and times are right; else InvalidToken."""
    try:
        decoded = jwt.decode(token, signing_keys(settings).key_set(), algorithms=[ALGORITHM])
    except (JoseError, ValueError, TypeError, KeyError):
        # A bad signature, an unknown `kid`, `alg` none or HS256, a malformed token.
        raise InvalidToken("Jeton d'accès invalide : signature ou format incorrect.") from None
    if decoded.header.get("typ") != TOKEN_TYPE:
        raise InvalidToken("Ce jeton n'est pas un jeton d'accès de Plume.")
    timestamp = int((now or datetime.now(UTC)).timestamp())
    registry = JWTClaimsRegistry(
        now=timestamp,
        leeway=LEEWAY_S,
        iss={"essential": True, "value": issuer(settings)},
        aud={"essential": True, "value": audience(settings)},
        sub={"essential": True},
        exp={"essential": True},
        iat={"essential": True},
        jti={"essential": True},
        org={"essential": True},
        role={"essential": True},
    )
    claims = decoded.claims
    try:
        registry.validate(claims)
    except JoseError as error:
        if error.error == "expired_token":
            raise InvalidToken("Ce jeton d'accès a expiré : demandez-en un nouveau.") from None
        raise InvalidToken(
            "Jeton d'accès invalide : émetteur, audience ou dates incorrects."
        ) from None
    try:
        issued_at, expires = int(claims["iat"]), int(claims["exp"])
        organization_id = uuid.UUID(str(claims["org"]))
    except (TypeError, ValueError):
        raise InvalidToken("Jeton d'accès invalide : revendications mal formées.") from None
    if issued_at > timestamp + LEEWAY_S or expires - issued_at > MAX_LIFETIME_S:
        raise InvalidToken("Jeton d'accès invalide : dates incorrectes.")
    return TokenClaims(str(claims["sub"]), organization_id, str(claims["role"]))
