"""API key material: generation, HMAC at rest, and the fingerprint of the server secret."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

KEY_PREFIX = "plm_"
_RANDOM_BYTES = 32
# plm_ + at least 43 base64url characters (32 random bytes), and nothing else: fullmatch,
# since `$` would also match before a trailing newline.
_KEY_FORMAT = re.compile(r"plm_[A-Za-z0-9_-]{43,128}")
DISPLAY_PREFIX_LENGTH = 12


@dataclass(frozen=True, slots=True)
class KeyHasher:
    """Hashes keys with HMAC-SHA-256 keyed by a server secret.

    Plain SHA-256 would let anyone holding a database dump test guesses offline; the HMAC
    needs the server secret too. `version` fingerprints the secret, so that rows hashed with
    an older secret can be found and re-hashed after a rotation.
    """

    secret: bytes

    @classmethod
    def from_secret(cls, secret: str) -> KeyHasher:
        return cls(secret=secret.encode())

    @property
    def version(self) -> str:
        return hmac.new(self.secret, b"plume api key secret version", hashlib.sha256).hexdigest()[
            :12
        ]

    def hash(self, key: str) -> str:
        return hmac.new(self.secret, key.encode(), hashlib.sha256).hexdigest()


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(_RANDOM_BYTES)


def is_well_formed(key: str) -> bool:
    return _KEY_FORMAT.fullmatch(key) is not None


def display_prefix(key: str) -> str:
    return key[:DISPLAY_PREFIX_LENGTH]
