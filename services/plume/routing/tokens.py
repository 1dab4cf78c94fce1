"""Token estimates with the tokenizer LiteLLM bundles (cl100k_base, no network needed)."""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from typing import Any

# Per-message overhead of chat formats (role markers), as OpenAI documents it.
_MESSAGE_OVERHEAD = 4


@lru_cache(maxsize=1)
def _encoding() -> Any:
    from litellm.litellm_core_utils.default_encoding import encoding

    return encoding


def count_text_tokens(text: str) -> int:
    if not text:
        return 0
    return len(_encoding().encode(text, disallowed_special=()))


def count_message_tokens(messages: Iterable[dict[str, Any]]) -> int:
    total = 3  # every reply is primed with an assistant marker
    for message in messages:
        total += _MESSAGE_OVERHEAD + count_text_tokens(str(message.get("content") or ""))
    return total
