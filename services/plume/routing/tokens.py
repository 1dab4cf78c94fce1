"""Token estimates with the tokenizer LiteLLM bundles (cl100k_base, no network needed).

Counted in linear time. tiktoken merges each piece of its pre-tokeniser (a word, a run of
spaces or of punctuation) in time quadratic in the piece's length: 40,000 "中" or 160,000
spaces in a row took 18 s and 48 s. So a text is counted in chunks cut where cl100k always
cuts (before a space followed by a non-space, after a line end followed by a non-space),
which changes no count; and a run with no such cut longer than _RUN_MAX characters, which no
word reaches, is counted slice by slice: its count may be off by a token a slice.

Ordinary text, with no run of more than _RUN_MAX spaces or non-spaces, is counted in one
piece (no cl100k piece is then longer than about twice _RUN_MAX: linear still), with tiktoken's
`encode_ordinary`, which counts as `encode(disallowed_special=())` at half its cost: a
300-page source in 85 ms instead of 160 ms (a synthèse is cut into parts before its first
call, docs/performance.md).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import Any

# Per-message overhead of chat formats (role markers), as OpenAI documents it.
_MESSAGE_OVERHEAD = 4

_RUN_MAX = 128
_CHUNK = 4096
_TWO_THREADS_FROM = 200_000  # characters
_CUT = re.compile(r"(?= \S)|(?<=[\r\n])(?=\S)")
_LONG_RUNS = (re.compile(rf"\S{{{_RUN_MAX + 1}}}"), re.compile(rf"\s{{{_RUN_MAX + 1}}}"))


@lru_cache(maxsize=1)
def _encoding() -> Any:
    from litellm.litellm_core_utils.default_encoding import encoding

    return encoding


def count_text_tokens(text: str) -> int:
    if not text:
        return 0
    encode = _encoding().encode_ordinary
    if len(text) <= _RUN_MAX or not any(run.search(text) for run in _LONG_RUNS):
        return len(encode(text))
    return sum(len(encode(chunk)) for chunk in _chunks(text))


def count_each(texts: Sequence[str]) -> list[int]:
    """Each text's count; a long list on two threads (tiktoken counts without holding the
    GIL): a 300-page source's paragraphs in 70 ms instead of 110 ms."""
    if sum(map(len, texts)) < _TWO_THREADS_FROM:
        return [count_text_tokens(text) for text in texts]
    half = len(texts) // 2
    with ThreadPoolExecutor(1, thread_name_prefix="plume-tokens") as pool:
        first = pool.submit(lambda: [count_text_tokens(text) for text in texts[:half]])
        second = [count_text_tokens(text) for text in texts[half:]]
        return first.result() + second


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
