"""Digests that stand for a text where Plume must not keep the text itself (audit trail)."""

from __future__ import annotations

import hashlib
from typing import Any


def digest(data: bytes | str) -> dict[str, Any]:
    """SHA-256 and size: identifies a request, an answer or a file without holding it."""
    raw = data.encode() if isinstance(data, str) else data
    return {"sha256": hashlib.sha256(raw).hexdigest(), "bytes": len(raw)}
