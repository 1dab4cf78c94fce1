"""Synthèses of long documents: cut the source into parts that fit the model's context,
summarise each, then the summaries (again if they are still too long). Done inline for a
streamed request (progress events), or as a job that any API process picks up
(plume.drafting.jobs)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import uuid
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from typing import Any

import anyio
import structlog
from fastapi import status
from sqlalchemy.ext.asyncio import AsyncSession

from plume.calls.context import Estimate, FailedAfterProducing, StoredResponse
from plume.calls.unit import ProviderCall
from plume.drafting.finishing import FinishedDocument, identity_of
from plume.drafting.prompts import build_messages
from plume.drafting.records import draft_out, stored_answer, streamed_answer
from plume.drafting.repository import DraftRepository
from plume.drafting.schemas import DraftOut, SyntheseRequest, request_fields
from plume.drafting.service import finish, new_row, store
from plume.errors import InternalError, PlumeError, ProviderUnavailable
from plume.models import DraftStatus
from plume.routing.policy import RoutingPolicy
from plume.routing.tokens import count_each, count_text_tokens
from plume.routing.types import Route
from plume.web.sse import sse

logger = structlog.get_logger("plume.drafting")

PROMPT_OVERHEAD_TOKENS = 1_000


@dataclass(slots=True)
class SynthesePlan:
    parts: list[str]
    budget: int
    long: bool


@dataclass(slots=True)
class JobSettings:
    poll_interval_s: float = 2.0
    lease: timedelta = field(default_factory=lambda: timedelta(minutes=5))
    max_attempts: int = 3


# (parts done, parts in all, the part just summarised: its digest and its summary).
Progress = Callable[[int, int, "Checkpoint | None"], Awaitable[None]]
Checkpoint = tuple[str, str]


async def plan(policy: RoutingPolicy, route: Route, payload: SyntheseRequest) -> SynthesePlan:
    """The source's parts, each within what the route's smallest context window leaves for
    it; one part is an ordinary draft."""
    window = policy.context_window(route)
    budget = max(512, window - route.max_output_tokens - PROMPT_OVERHEAD_TOKENS)
    text = payload.source_text
    if len(text) <= budget * 2:  # French text runs at more than 2 characters a token
        return SynthesePlan([text], budget, long=False)
    parts = await anyio.to_thread.run_sync(split_by_tokens, text, budget)
    return SynthesePlan(parts, budget, long=len(parts) > 1)


def estimate(policy: RoutingPolicy, route: Route, synthese: SynthesePlan) -> Estimate:
    """An upper bound for a synthèse in parts: each part at most `budget` tokens, then the
    final call reading every part's summary."""
    cap = policy.output_cap(route, None)
    parts = len(synthese.parts)
    return Estimate(
        prompt_tokens=parts * (synthese.budget + PROMPT_OVERHEAD_TOKENS)
        + parts * cap
        + PROMPT_OVERHEAD_TOKENS,
        output_tokens=cap,
        calls=parts + 1,
    )


async def queue(call: ProviderCall, fields: dict[str, Any]) -> DraftOut:
    """Store the job; any API process will pick it up. Its reservation stays held."""
    draft_id = uuid.uuid4()
    call.draft_id = draft_id

    async def add(session: AsyncSession) -> DraftOut:
        # A new instance each time it is written (plume.calls.recovery may write it again).
        row = new_row(call.principal, "synthese", fields, call.route, draft_id=draft_id)
        row.status = DraftStatus.PROCESSING
        row.title = "Synthèse en cours"
        row.progress = {"done": 0, "total": 0}
        row.reservation_id = call.reservation_id
        return draft_out(await DraftRepository(session, call.principal.scope).add(row))

    answer: Callable[[DraftOut | None], StoredResponse] = partial(
        stored_answer, status.HTTP_202_ACCEPTED
    )
    stored = await call.queue(add, answer=answer)
    assert stored is not None
    return stored


async def summarise(
    call: ProviderCall,
    payload: SyntheseRequest,
    synthese: SynthesePlan,
    on_progress: Progress | None = None,
    *,
    limits: PartLimits | None = None,
    known: Mapping[str, str] | None = None,
) -> FinishedDocument:
    """Summarise the parts, several at once (`limits`), then the summaries (again if they are
    still too long); the call adds up what every provider call consumed. A part whose
    summary is `known` (by its digest: an earlier attempt's, see `part_digest`) is not
    summarised again."""
    identity = identity_of(call.principal)
    request = request_fields(payload)
    limits = limits or PartLimits()
    known = known or {}
    parts = synthese.parts
    progress = _Progress(on_progress, len(parts) if len(parts) > 1 else 0)
    while len(parts) > 1:

        def messages_for(index: int, part: str, count: int = len(parts)) -> list[dict[str, Any]]:
            return build_messages(
                "synthese",
                identity,
                {**request, "source_text": part},
                template="synthese_part",
                extra={"part": index, "parts": count},
            )

        summaries = await _summaries(call, parts, messages_for, limits, progress, known)
        joined = "\n\n".join(summaries)
        parts = (
            [joined]
            if surely_within(joined, synthese.budget)
            else await anyio.to_thread.run_sync(parts_of, joined, synthese.budget)
        )
        progress.total += len(parts) if len(parts) > 1 else 0
    messages = build_messages("synthese", identity, {**request, "source_text": parts[0]})
    completion = await call.complete(messages, max_tokens=payload.max_output_tokens)
    return await finish("synthese", completion, request, identity)


class PartLimits:
    """How many part summaries run at once: at most `per_synthese` for one synthèse, and
    `per_organisation` for all of an organisation's synthèses in this process (a provider's
    own bound is its deployment's `max_parallel_requests`, which LiteLLM's Router keeps)."""

    def __init__(self, per_synthese: int = 8, per_organisation: int = 8) -> None:
        self.per_synthese = per_synthese
        self.per_organisation = per_organisation
        # An organisation's semaphore lives while one of its synthèses holds it.
        self._organisations: weakref.WeakValueDictionary[uuid.UUID, asyncio.Semaphore] = (
            weakref.WeakValueDictionary()
        )

    def organisation(self, organization_id: uuid.UUID) -> asyncio.Semaphore:
        semaphore = self._organisations.get(organization_id)
        if semaphore is None:
            semaphore = asyncio.Semaphore(self.per_organisation)
            self._organisations[organization_id] = semaphore
        return semaphore


@dataclass(slots=True)
class _Progress:
    """Parts done out of all the rounds' parts, reported one at a time and in order."""

    report: Progress | None
    total: int
    done: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def one_more(self, summarised: Checkpoint | None) -> None:
        async with self.lock:
            self.done += 1
            if self.report is not None:
                await self.report(self.done, self.total, summarised)


async def _summaries(
    call: ProviderCall,
    parts: list[str],
    messages_for: Callable[[int, str], list[dict[str, Any]]],
    limits: PartLimits,
    progress: _Progress,
    known: Mapping[str, str],
) -> list[str]:
    """Each part's summary, in the parts' order, several asked at once. After a failure no
    part starts, but those already asked run to their end: the provider is paid for them,
    so their usage is counted before the failure is raised. Cancelled (the client left, the
    process stops), every part still running is cancelled with it."""
    summaries: list[str] = [""] * len(parts)
    failures: list[BaseException] = []
    mine = asyncio.Semaphore(limits.per_synthese)
    shared = limits.organisation(call.principal.organization.id)

    async def one(index: int, part: str, digest: str) -> None:
        async with mine, shared:
            if failures:
                return
            try:
                completion = await call.complete(messages_for(index + 1, part))
                summaries[index] = completion.text.strip()
                await progress.one_more((digest, summaries[index]))
            except Exception as error:
                failures.append(error)

    tasks = []
    for index, part in enumerate(parts):
        digest = part_digest(part)
        if digest in known:
            summaries[index] = known[digest]
            await progress.one_more(None)
        else:
            tasks.append(asyncio.create_task(one(index, part, digest)))
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
    if failures:
        first = failures[0]
        produced = call.usage.completion_tokens > 0
        if produced and type(first) is ProviderUnavailable:
            raise FailedAfterProducing() from first  # says that what was produced is charged
        raise first
    return summaries


async def stream(
    call: ProviderCall,
    payload: SyntheseRequest,
    synthese: SynthesePlan,
    limits: PartLimits | None = None,
) -> AsyncIterator[bytes]:
    """A long synthèse inline: `progress` events, then the `draft` (or `error`)."""
    updates: asyncio.Queue[tuple[int, int]] = asyncio.Queue()

    async def progress(done: int, total: int, _: Checkpoint | None) -> None:
        updates.put_nowait((done, total))

    task = asyncio.create_task(summarise(call, payload, synthese, progress, limits=limits))
    getter: asyncio.Task[tuple[int, int]] | None = None
    try:
        while not task.done():
            getter = asyncio.create_task(updates.get())
            finished, _ = await asyncio.wait({task, getter}, return_when=asyncio.FIRST_COMPLETED)
            if getter in finished:
                done, total = getter.result()
                yield call.sent(sse({"done": done, "total": total}, "progress"))
        document = task.result()
        fields = request_fields(payload)
        draft = await store(
            call, "synthese", fields, document, partial(streamed_answer, call.transcript)
        )
        yield sse(draft, "draft")
    except Exception as error:
        problem = error if isinstance(error, PlumeError) else InternalError()
        if not isinstance(error, PlumeError):
            logger.exception("synthese_stream_error")
        await call.fail(error)
        yield sse(problem.problem(call.facts.request_id), "error")
    finally:
        # The client went away, or the stream failed: stop the parts still running before
        # the call settles with what they consumed.
        for pending in (task, getter):
            if pending is not None and not pending.done():
                pending.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await pending


def part_digest(part: str) -> str:
    """What names a part's summary among a job's checkpoints: its text's digest."""
    return hashlib.sha256(part.encode("utf-8", "surrogatepass")).hexdigest()


def surely_within(text: str, budget: int) -> bool:
    """Whether the text fits in `budget` tokens, told without tokenising it: a token is at
    least one byte."""
    return len(text) <= budget and len(text.encode("utf-8", "surrogatepass")) <= budget


def parts_of(text: str, budget: int) -> list[str]:
    """The text whole if it fits in `budget` tokens, else split_by_tokens' parts."""
    return [text] if count_text_tokens(text) <= budget else split_by_tokens(text, budget)


def split_by_tokens(text: str, budget: int) -> list[str]:
    """Cut on paragraph ends into parts of at most `budget` tokens (hard cut as last resort)."""
    parts: list[str] = []
    current: list[str] = []
    used = 0
    paragraphs = re.split(r"\n\s*\n", text)
    for paragraph, tokens in zip(paragraphs, count_each(paragraphs), strict=True):
        if tokens > budget:
            if current:
                parts.append("\n\n".join(current))
                current, used = [], 0
            words = paragraph.split(" ")
            step = max(1, len(words) * budget // max(tokens, 1))
            parts += [" ".join(words[i : i + step]) for i in range(0, len(words), step)]
            continue
        if used + tokens > budget and current:
            parts.append("\n\n".join(current))
            current, used = [], 0
        current.append(paragraph)
        used += tokens
    if current:
        parts.append("\n\n".join(current))
    return parts or [text]
