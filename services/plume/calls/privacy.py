"""A provider call's privacy: what its organisation's `personal_data` policy asks of every
message that leaves the process (docs/privacy.md).

This is the one seam: every provider call of Plume — each draft, each part of a synthèse and
its merge, each chat completion — goes through `ProviderCall.complete` or `.stream`, which
hand their messages to `CallPrivacy.protect` and the answer to `restore`. The call lives as
long as the request (or the synthèse job), and so does its mapping: the same resident is the
same placeholder in every message of it, and nothing of the mapping outlives it.

- `pseudonymise` (the default): identifiers replaced by placeholders before the Router sees
  the messages, put back in the answer (streams: chunk by chunk, a placeholder cut between
  two chunks held back until it is whole).
- `refuse`: a request whose fields hold personal data is refused before anything is
  reserved (`check`), naming its fields.
- `allow` (the operator's alone): messages go as they are.

A route that reaches only the offline provider (in the process) is left alone, and the
offline provider reads a pseudonymised request in clear (`routing.types.REVEAL`) when it
answers as a fallback.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

import anyio

from plume.credentials.auth import Principal
from plume.errors import PersonalDataRefused
from plume.privacy.pseudonyms import Pseudonyms, fields_with_personal_data
from plume.routing.types import REVEAL

# The chat completion's answer says how many identifiers the provider saw as placeholders.
PSEUDONYMISED_HEADER = "X-Plume-Pseudonymised"


def protected_names(principal: Principal, fields: Mapping[str, Any] | None = None) -> list[str]:
    """The commune's own identity, which is not a resident's: its name, its EPCI's and the
    levels above, its mayor's and secretary's names and titles, its tribunal, and the
    signatory a request names (the commune's officer, who signs in its name)."""
    policy = principal.policy
    names = [principal.organization.name, policy.tribunal_administratif]
    names += [level.name for level in principal.chain]
    if principal.epci_name:
        names.append(principal.epci_name)
    for officer in (policy.mayor, policy.secretary):
        if officer is not None:
            names += [officer.name, officer.title]
    signatory = (fields or {}).get("signatory")
    if isinstance(signatory, Mapping):
        names += [str(signatory.get(key) or "") for key in ("name", "title")]
    # The secrétaire de séance of a délibération: an elected member, named by the act.
    seance = (fields or {}).get("session")
    if isinstance(seance, Mapping) and isinstance(seance.get("secretary"), str):
        names.append(seance["secretary"])
    return names


class CallPrivacy:
    """One call's pseudonyms (or none), by its organisation's policy and its route."""

    def __init__(
        self,
        principal: Principal,
        *,
        leaves_the_process: bool,
        fields: Mapping[str, Any] | None = None,
    ) -> None:
        mode = principal.policy.personal_data if leaves_the_process else "allow"
        self.mode = mode
        self._protected = protected_names(principal, fields)
        self.pseudonyms = Pseudonyms(self._protected) if mode == "pseudonymise" else None
        # A synthèse's parts are protected concurrently: one table of pseudonyms, one writer.
        self._protecting = anyio.Lock()

    @property
    def count(self) -> int:
        """How many distinct identifiers the provider was not shown."""
        return self.pseudonyms.count if self.pseudonyms is not None else 0

    async def check(self, fields: Mapping[str, Any] | None) -> None:
        """Under `refuse`, a request whose fields hold personal data goes no further."""
        if self.mode != "refuse" or not fields:
            return
        found = await anyio.to_thread.run_sync(
            fields_with_personal_data, fields, tuple(self._protected)
        )
        if found:
            raise PersonalDataRefused(found)

    async def protect(self, messages: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """The messages as the provider may read them (detection in a worker thread, unless
        the model has already read them all: the hop to a thread would then cost more than
        the patterns left to run)."""
        if self.pseudonyms is None:
            return list(messages)
        if not self.pseudonyms.quick(messages):
            # The model's reading, most of the work, needs no lock: a synthèse's parts are
            # read at once; the placeholders are then given one part at a time.
            await anyio.to_thread.run_sync(self.pseudonyms.read, messages)
        async with self._protecting:
            # The model has read them all by now: what is left is the patterns.
            if self.pseudonyms.short(messages):
                return self.pseudonyms.protect_messages(messages)
            return await anyio.to_thread.run_sync(self.pseudonyms.protect_messages, messages)

    def restore(self, text: str) -> str:
        return self.pseudonyms.restore(text) if self.pseudonyms is not None else text

    def _reveal(self) -> Callable[[str], str] | None:
        return self.pseudonyms.restore if self.pseudonyms is not None else None

    @contextlib.contextmanager
    def revealing(self) -> Any:
        """While the Router is asked: the offline provider, if it answers, reads in clear."""
        token = REVEAL.set(self._reveal())
        try:
            yield
        finally:
            REVEAL.reset(token)

    async def stream(
        self,
        messages: Sequence[dict[str, Any]],
        start: Callable[[list[dict[str, Any]]], AsyncIterator[str]],
    ) -> AsyncIterator[str]:
        """The deltas of the stream `start` opens with the protected messages, restored; the
        offline provider reveals at each step (set and reset around each wait, never across
        a `yield`)."""
        deltas = start(await self.protect(messages))
        restorer = self.pseudonyms.restorer() if self.pseudonyms is not None else None
        try:
            while True:
                with self.revealing():
                    try:
                        delta = await anext(deltas)
                    except StopAsyncIteration:
                        break
                text = restorer.feed(delta) if restorer is not None else delta
                if text:
                    yield text
            tail = restorer.flush() if restorer is not None else ""
            if tail:
                yield tail
        finally:
            closer = getattr(deltas, "aclose", None)
            if closer is not None:
                with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
                    await closer()
