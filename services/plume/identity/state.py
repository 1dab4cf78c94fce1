"""What a sign-in carries from /auth/login to /auth/callback, in a short-lived cookie signed
with the server secret (Plume keeps no state between the two requests), and where the
browser may be sent afterwards.

The cookie holds the state, the nonce, the PKCE verifier and the destination: the callback
refuses a state that is not the cookie's (a forged or replayed callback), the ID token's
nonce is checked against it, and the code is only worth something with the verifier.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
from dataclasses import asdict, dataclass

LOGIN_COOKIE = "plume_login"
LOGIN_TTL_S = 600
DEFAULT_NEXT = "/app"
# A path of this site: one leading slash, no second (//evil.example), no backslash (browsers
# read /\evil.example as //evil.example), no control character, no scheme.
_SAME_ORIGIN_PATH = re.compile(r"^/(?![/\\])[^\\\x00-\x1f\x7f]*$")


def safe_next(value: str | None) -> str:
    """`value` if it is a path of this site, else `/app`: never an open redirect."""
    if value and len(value) <= 2000 and _SAME_ORIGIN_PATH.match(value):
        return value
    return DEFAULT_NEXT


@dataclass(frozen=True, slots=True)
class PendingLogin:
    state: str
    nonce: str
    code_verifier: str
    next: str
    expires: int


def _key(secret: str) -> bytes:
    # A key of its own, derived from the server secret: a login cookie is no other token.
    return hmac.new(secret.encode(), b"plume login cookie", hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def seal(pending: PendingLogin, secret: str) -> str:
    body = _b64(json.dumps(asdict(pending), separators=(",", ":")).encode())
    signature = _b64(hmac.new(_key(secret), body.encode(), hashlib.sha256).digest())
    return f"{body}.{signature}"


def unseal(cookie: str | None, secret: str) -> PendingLogin | None:
    """The pending login, if the cookie is ours, intact and not expired."""
    if not cookie or cookie.count(".") != 1:
        return None
    body, signature = cookie.split(".")
    expected = _b64(hmac.new(_key(secret), body.encode(), hashlib.sha256).digest())
    if not hmac.compare_digest(signature, expected):
        return None
    try:
        pending = PendingLogin(**json.loads(_unb64(body)))
    except (ValueError, TypeError):
        return None
    if pending.expires < time.time():
        return None
    return pending


def new_pending(state: str, nonce: str, code_verifier: str, next_path: str) -> PendingLogin:
    return PendingLogin(state, nonce, code_verifier, next_path, int(time.time()) + LOGIN_TTL_S)
