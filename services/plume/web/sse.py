"""Server-Sent Events: one encoder for drafts' named events and OpenAI's data-only chunks."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel


def sse(payload: BaseModel | dict[str, Any] | str, event: str | None = None) -> bytes:
    """One event: `event: …` when named, then `data: …` (JSON, or a string as it is)."""
    if isinstance(payload, BaseModel):
        data = payload.model_dump_json()
    elif isinstance(payload, str):
        data = payload
    else:
        data = json.dumps(payload, ensure_ascii=False)
    named = f"event: {event}\n" if event is not None else ""
    return f"{named}data: {data}\n\n".encode()
