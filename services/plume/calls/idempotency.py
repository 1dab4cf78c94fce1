"""Idempotency-Key on POST /v1/drafts and POST /v1/chat/completions.

Scoped to the organisation and kept 24 h. The key is claimed in the transaction that
reserves quota (so a refused request leaves no claim), and the answer is stored in the
settlement transaction (so a request charged is a request whose answer can be replayed):
see plume.calls.settlement.

A retry with the same key and body gets the first answer, with `Idempotency-Replayed:
true`; while the first is still running, 409; with another body, 422. A request that
failed or whose client went away frees its key: retrying it runs it again.
"""

from __future__ import annotations

import hashlib

from fastapi import Request

from plume.calls.context import StoredResponse
from plume.errors import FieldError, InvalidRequest
from plume.web.transaction import IDEMPOTENCY_KEY_HEADER

HEADER = IDEMPOTENCY_KEY_HEADER
MAX_KEY_LENGTH = 255


class IdempotentReplay(Exception):
    """Not an error: the stored first answer, to send again."""

    def __init__(self, response: StoredResponse) -> None:
        super().__init__("idempotent replay")
        self.response = response


async def request_key(request: Request) -> tuple[str | None, str | None]:
    """The request's Idempotency-Key, validated, and the hash of what it covers."""
    key = request.headers.get(HEADER)
    if key is None:
        return None, None
    if not 1 <= len(key) <= MAX_KEY_LENGTH or not key.isascii() or not key.isprintable():
        message = (
            f"L'en-tête Idempotency-Key doit contenir de 1 à {MAX_KEY_LENGTH} caractères "
            "ASCII imprimables (un UUID par exemple)."
        )
        raise InvalidRequest(message, errors=[FieldError(HEADER, message)])
    digest = hashlib.sha256()
    digest.update(f"{request.method} {request.url.path}\n".encode())
    digest.update(await request.body())
    return key, digest.hexdigest()
