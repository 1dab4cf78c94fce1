"""Ed25519 signatures of chain heads (receipts).

The key pair is derived from PLUME_SECRET_KEY with HKDF, so every process signs with the
same key without another secret to distribute; its public half is published at
GET /v1/audit/public-key. Rotating the secret rotates the key: keep the old public key to
check receipts signed before (its `key_id` tells which).
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from plume.audit.chain import canonical

_INFO = b"plume audit receipts v1"


class ReceiptSigner:
    def __init__(self, secret: str) -> None:
        seed = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(
            secret.encode()
        )
        self._private = Ed25519PrivateKey.from_private_bytes(seed)
        public = self._private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.public_key = base64.b64encode(public).decode()
        self.public_key_pem = (
            self._private.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )
        self.key_id = hashlib.sha256(public).hexdigest()[:16]

    def sign(self, statement: dict[str, Any]) -> str:
        """Base64 Ed25519 signature of the statement's canonical JSON."""
        return base64.b64encode(self._private.sign(canonical(statement).encode())).decode()


def verify_signature(public_key_b64: str, statement: dict[str, Any], signature_b64: str) -> bool:
    key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key_b64))
    try:
        key.verify(base64.b64decode(signature_b64), canonical(statement).encode())
    except InvalidSignature:
        return False
    return True
