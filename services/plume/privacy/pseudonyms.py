"""One request's pseudonyms: residents' identifiers replaced by typed placeholders before a
provider reads the request, and put back in its answer, streams included.

The mapping lives in one `Pseudonyms` object, held by the request's provider call and
dropped with it: it is never stored, logged, counted in a metric or put in an error message.
The same resident is the same placeholder everywhere in the request (every message, every
part of a synthèse and its merge): « M. Dupont » after « Jean Dupont » is « [PERSONNE_1] »
too, when only one person of the request bears that name.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from plume.privacy import detection
from plume.privacy.detection import Entity, EntityType, detect, fold, model_has_read

PLACEHOLDER = re.compile(r"\[([A-Z]+(?:_[A-Z]+)*)_(\d{1,4})\]")
# The longest placeholder (« [DATE_NAISSANCE_9999] »): a stream holds back at most this much.
_LONGEST = len("[DATE_NAISSANCE_9999]")
_PARTIAL = re.compile(r"\[[A-Z_]*\d*$")
# How many texts a request remembers having protected (its repeated instructions).
_REMEMBERED = 64
# Up to this many characters, messages the model has already read are protected on the event
# loop (the patterns take well under a millisecond).
QUICK_CHARS = 8_192


def _key(entity: Entity) -> str:
    if entity.type in ("PERSONNE", "ADRESSE", "EMAIL", "DATE_NAISSANCE"):
        return " ".join(fold(entity.text).split())
    return re.sub(r"[\s.\-]", "", entity.text).upper()


class Pseudonyms:
    """The placeholders of one request. Not thread-safe: one request protects one text at a
    time (in a worker thread), then restores on the event loop."""

    def __init__(self, protected: Iterable[str] = ()) -> None:
        self.protected = tuple(name for name in protected if name and name.strip())
        self._by_key: dict[tuple[EntityType, str], str] = {}
        self._originals: dict[str, str] = {}
        self._counters: dict[EntityType, int] = {}
        # The people named so far, by surname: « M. Dupont » after « Jean Dupont ».
        self._surnames: dict[str, set[str]] = {}
        # Texts already protected: a synthèse sends the same instructions with every part.
        self._done: dict[str, str] = {}

    def __repr__(self) -> str:  # never the mapping, whatever prints this object
        return f"Pseudonyms({len(self._originals)} items)"

    @property
    def count(self) -> int:
        """How many distinct identifiers were replaced."""
        return len(self._originals)

    # -- protecting ----------------------------------------------------------------------

    def protect(self, text: str) -> str:
        """`text` with every resident's identifier replaced (CPU work: call it off the loop)."""
        done = self._done.get(text)
        if done is not None:
            return done
        protected = self._protect(text)
        if len(self._done) < _REMEMBERED:
            self._done[text] = protected
        return protected

    def _protect(self, text: str) -> str:
        entities = detect(text, protected=self.protected)
        if not entities:
            return text
        parts: list[str] = []
        position = 0
        for entity in entities:
            parts.append(text[position : entity.start])
            parts.append(self._placeholder(entity))
            position = entity.end
        parts.append(text[position:])
        return "".join(parts)

    def protect_messages(self, messages: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Chat messages with their text protected (a string, or a list of text parts)."""
        protected: list[dict[str, Any]] = []
        for message in messages:
            content = message.get("content")
            copy = dict(message)
            if isinstance(content, str):
                copy["content"] = self.protect(content)
            elif isinstance(content, list):
                copy["content"] = [self._protect_part(part) for part in content]
            protected.append(copy)
        return protected

    def quick(self, messages: Sequence[dict[str, Any]]) -> bool:
        """Whether protecting `messages` is quick enough for the event loop: short texts the
        model has already read (a conversation's resent history), patterns alone to run."""
        return self.short(messages) and all(
            text in self._done or model_has_read(text) for text in _message_texts(messages)
        )

    @staticmethod
    def short(messages: Sequence[dict[str, Any]]) -> bool:
        """Whether the patterns on `messages` take well under a millisecond."""
        return sum(len(text) for text in _message_texts(messages)) <= QUICK_CHARS

    def read(self, messages: Sequence[dict[str, Any]]) -> None:
        """The model's reading of what `protect_messages` will protect, done ahead and
        remembered (CPU work: off the loop); this request's placeholders are not touched."""
        detection.read(text for text in _message_texts(messages) if text not in self._done)

    def _protect_part(self, part: Any) -> Any:
        if isinstance(part, dict) and isinstance(part.get("text"), str):
            return {**part, "text": self.protect(part["text"])}
        return part

    def _placeholder(self, entity: Entity) -> str:
        key = (entity.type, _key(entity))
        existing = self._by_key.get(key) or self._same_person(entity)
        if existing is not None:
            return existing
        number = self._counters.get(entity.type, 0) + 1
        self._counters[entity.type] = number
        placeholder = f"[{entity.type}_{number}]"
        self._by_key[key] = placeholder
        self._originals[placeholder] = entity.text
        if entity.type == "PERSONNE":
            surname = key[1].split()[-1]
            self._surnames.setdefault(surname, set()).add(placeholder)
        return placeholder

    def _same_person(self, entity: Entity) -> str | None:
        """A surname alone is the one person of the request who bears it, if only one does."""
        if entity.type != "PERSONNE":
            return None
        words = _key(entity).split()
        if len(words) != 1:
            return None
        bearers = self._surnames.get(words[0], set())
        return next(iter(bearers)) if len(bearers) == 1 else None

    # -- restoring -----------------------------------------------------------------------

    def restore(self, text: str) -> str:
        """Placeholders back to what they stand for; one the model invented stays as is."""
        if "[" not in text or not self._originals:
            return text
        return PLACEHOLDER.sub(lambda m: self._originals.get(m.group(), m.group()), text)

    def restorer(self) -> StreamRestorer:
        return StreamRestorer(self)


class StreamRestorer:
    """Restores a stream chunk by chunk: the end of a chunk that may begin a placeholder is
    held back until the next chunk says whether it does."""

    def __init__(self, pseudonyms: Pseudonyms) -> None:
        self._pseudonyms = pseudonyms
        self._held = ""

    def feed(self, chunk: str) -> str:
        text = self._held + chunk
        self._held = ""
        partial = _PARTIAL.search(text[-_LONGEST:]) if "[" in text[-_LONGEST:] else None
        if partial is not None:
            cut = len(text) - (len(text[-_LONGEST:]) - partial.start())
            text, self._held = text[:cut], text[cut:]
        return self._pseudonyms.restore(text)

    def flush(self) -> str:
        held, self._held = self._held, ""
        return self._pseudonyms.restore(held)


# -- a request's fields ----------------------------------------------------------------------


def _message_texts(messages: Sequence[dict[str, Any]]) -> Iterator[str]:
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            yield content
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    yield part["text"]


def flatten(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every string of a request with its path: `context`, `points[1]`, `recipient.name`."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from flatten(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from flatten(item, f"{path}[{index}]")


def fields_with_personal_data(
    fields: Mapping[str, Any], protected: Iterable[str] = ()
) -> list[str]:
    """The paths of the request's strings that hold a resident's identifier (CPU work)."""
    names = tuple(protected)
    return [
        path for path, text in flatten(fields) if text.strip() and detect(text, protected=names)
    ]
