"""Token estimates with the tokenizer LiteLLM bundles (cl100k_base, no network needed).

Counted in linear time. tiktoken merges each piece of its pre-tokeniser (a word, a run of
spaces or of punctuation) in time quadratic in the piece's length: 40,000 "中" or 160,000
spaces in a row took 18 s and 48 s. So a text is counted in chunks cut where cl100k always
cuts (before a space followed by a non-space, after a line end followed by a non-space),
which changes no count; and a run with no such cut longer than _RUN_MAX characters, which no
word reaches, is counted slice by slice: its count may be off by a token a slice.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from functools import lru_cache
from typing import Any

# Per-message overhead of chat formats (role markers), as OpenAI documents it.
_MESSAGE_OVERHEAD = 4

_RUN_MAX = 128
_CHUNK = 4096
_CUT = re.compile(r"(?= \S)|(?<=[\r\n])(?=\S)")


@lru_cache(maxsize=1)
def _encoding() -> Any:
    from litellm.litellm_core_utils.default_encoding import encoding

    return encoding


def count_text_tokens(text: str) -> int:
    if not text:
        return 0
    encoding = _encoding()
    if len(text) <= _RUN_MAX:
        return len(encoding.encode(text, disallowed_special=()))
    return sum(len(encoding.encode(chunk, disallowed_special=())) for chunk in _chunks(text))


def _chunks(text: str) -> Iterator[str]:
    """The text in chunks of about _CHUNK characters, each a whole number of cl100k's
    pieces, but for runs longer than _RUN_MAX, cut in slices."""
    start = previous = 0  # the chunk being gathered, the last cut seen
    for cut in _CUT.finditer(text, 1):
        position = cut.start()
        if position - previous > _RUN_MAX:
            if previous > start:
                yield text[start:previous]
            yield from _slices(text, previous, position)
            start = position
        elif position - start > _CHUNK:
            yield text[start:previous]
            start = previous
        previous = position
    if len(text) - previous > _RUN_MAX:
        if previous > start:
            yield text[start:previous]
        yield from _slices(text, previous, len(text))
    else:
        yield text[start:]


def _slices(text: str, start: int, end: int) -> Iterator[str]:
    for position in range(start, end, _RUN_MAX):
        yield text[position : min(position + _RUN_MAX, end)]


def count_message_tokens(messages: Iterable[dict[str, Any]]) -> int:
    total = 3  # every reply is primed with an assistant marker
    for message in messages:
        total += _MESSAGE_OVERHEAD + count_text_tokens(str(message.get("content") or ""))
    return total
