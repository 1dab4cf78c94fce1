"""A provider-backed request as one unit of work.

A provider call lasts seconds to minutes, so no database connection, row lock or advisory
lock is held across it. A call is:

1. `async with calls.open(...) as call`: in the request's first transaction, the tenant
   context and the quota reservation (one statement), then the Idempotency-Key's claim,
   committed — or rolled back, and nothing is held;
2. `call.complete(...)` or `call.stream(...)`: the provider, with nothing held;
3. `call.settle(...)`: in a second short transaction, shielded from cancellation, what the
   request produced (the draft) with the settlement (plume.calls.settlement: the answer kept
   for retries, the ledger's move, the usage record, the audit entry), committed together.

Whatever else happens — the provider fails, Plume fails, the client goes away, the task is
cancelled — the call settles itself when its block ends, once, as the way it ended says. A
stream hands its call to its response (`call.streaming_response`), which settles it when it
ends, even if its body never ran. A synthèse job resumes its request's call (`calls.resume`).

Every provider call has a deadline (`PLUME_PROVIDER_DEADLINE_S`), to a stream's last word.
The settlement runs in a task the application waits for before it stops (`drain`): a request
cancelled while it settles (uvicorn cancels through any shield) settles all the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any, Self, TypeVar

import anyio
import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from plume.calls.context import (
    CallObserver,
    CallOutcome,
    DeadlineExceeded,
    Estimate,
    FailedAfterProducing,
    Outcome,
    RequestFacts,
    SettledElsewhere,
    StoredResponse,
    Usage,
)
from plume.calls.inflight import InFlight
from plume.calls.privacy import CallPrivacy
from plume.calls.recovery import Kept, settle_again, settle_later
from plume.calls.settlement import Settlement
from plume.calls.streaming import SettledStreamingResponse, close_quietly, within
from plume.credentials.auth import Principal
from plume.db import database_unreachable, enter_tenant_context
from plume.errors import PlumeError, ProviderUnavailable
from plume.hashing import digest
from plume.quotas.guard import RateLimitStatus
from plume.routing.router import ProviderRouter
from plume.routing.types import Completion, Route, StreamState
from plume.web.transaction import FirstConnection

logger = structlog.get_logger("plume.calls")

T = TypeVar("T")
Store = Callable[[AsyncSession], Awaitable[T]]


class ProviderCall:
    """One provider-backed request, from its reservation to its one settlement."""

    def __init__(
        self,
        calls: ProviderCalls,
        principal: Principal,
        facts: RequestFacts,
        *,
        kind: str,
        route: Route,
        estimate: Estimate,
        session: AsyncSession | FirstConnection | None = None,
        reservation_id: uuid.UUID | None = None,
        draft_id: uuid.UUID | None = None,
        fields: Mapping[str, Any] | None = None,
    ) -> None:
        self._calls = calls
        self.principal = principal
        self.facts = facts
        self.kind = kind
        self.route = route
        self.estimate = estimate
        self.started = time.perf_counter()
        # Its usage record's id: one settlement per call (plume.calls.recovery).
        self.settlement_id = uuid.uuid4()
        # What the provider calls produced, added up (a synthèse makes several).
        self.usage = Usage()
        # What the provider may read of residents (docs/privacy.md); `fields`, the request's,
        # are refused before anything is reserved when the policy says `refuse`.
        self.privacy = CallPrivacy(
            principal, leaves_the_process=calls.router.leaves_the_process(route), fields=fields
        )
        self._fields = fields
        # Held by the first transaction; None when no quota applies at any level.
        self.reservation_id = reservation_id
        self.rate_limit: RateLimitStatus | None = None
        # The draft the request creates, once known (the audit entry names it).
        self.draft_id = draft_id
        # The request's first transaction, until it commits; None for a resumed call.
        self._session = session
        self._contacted = False
        self._last: Completion | None = None
        self._stream: StreamState | None = None
        self._deltas: AsyncIterator[str] | None = None
        self._sent: list[bytes] = []
        self._handed_over = False
        self._settled = False
        # A success the database went away under, to settle when the block ends.
        self._unsettled: Callable[[], Awaitable[Any]] | None = None
        # The settlement under way, in its own task (see _write).
        self._settling: asyncio.Future[Any] | None = None

    # -- the block -------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._session is not None:
            await self.privacy.check(self._fields)
            session, self._session = self._session, None
            await self._calls.settlement.reserve_committed(session, self)
        self._calls.track(self)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if error is None and self._handed_over:
            return  # the response settles it
        await self.close(error)

    @property
    def settled(self) -> bool:
        return self._settled

    def response_headers(self) -> dict[str, str]:
        """RateLimit-* for the tightest quota this request counted against."""
        return self.rate_limit.headers() if self.rate_limit is not None else {}

    # -- the provider ----------------------------------------------------------------------

    async def complete(
        self,
        messages: list[dict[str, Any]],
        *,
        max_tokens: int | None = None,
        sampling: Mapping[str, Any] | None = None,
    ) -> Completion:
        self._contacted = True
        produced = self.usage.completion_tokens > 0  # by earlier calls: charged if this fails
        deadline = anyio.current_time() + self._calls.deadline_s
        try:
            with anyio.CancelScope(deadline=deadline) as bounded:
                sent = await self.privacy.protect(messages)
                self.usage.pseudonymised = self.privacy.count
                with self.privacy.revealing():
                    completion = await self._calls.router.complete(
                        self.route, sent, max_tokens=max_tokens, sampling=sampling
                    )
        except ProviderUnavailable:
            if produced:
                raise FailedAfterProducing() from None
            raise
        if bounded.cancelled_caught:
            raise DeadlineExceeded(self._calls.deadline_s, produced=produced)
        completion.text = self.privacy.restore(completion.text)
        self._record(completion)
        return completion

    def stream(
        self,
        messages: list[dict[str, Any]],
        *,
        max_tokens: int | None = None,
        sampling: Mapping[str, Any] | None = None,
    ) -> AsyncIterator[str]:
        """The answer's text deltas (`streamed()`: their sum), closed at the settlement."""
        self._contacted = True
        self._stream = StreamState()
        state, router = self._stream, self._calls.router

        def start(sent: list[dict[str, Any]]) -> AsyncIterator[str]:
            self.usage.pseudonymised = self.privacy.count
            return router.stream(self.route, sent, state, max_tokens=max_tokens, sampling=sampling)

        deltas = self.privacy.stream(messages, start)
        limit = self._calls.deadline_s
        earlier = self.usage.completion_tokens > 0
        self._deltas = within(
            deltas,
            anyio.current_time() + limit,
            lambda: DeadlineExceeded(limit, earlier or bool(state.text_parts)),
        )
        return self._deltas

    def streamed(self) -> Completion | None:
        """What the stream produced, counted once: the provider's figures, else estimates
        (the prompt as estimated before the call). None if no provider answered."""
        if self._stream is None:
            return self._last
        state, self._stream = self._stream, None
        completion = self._calls.router.settle_stream(
            state, self.estimate.prompt_tokens, self.started
        )
        if completion is not None:
            completion.text = self.privacy.restore(completion.text)
            self._record(completion)
        return completion

    def _record(self, completion: Completion) -> None:
        self._last = completion
        self.usage.add(completion)

    # -- what the client received ----------------------------------------------------------

    def sent(self, event: bytes) -> bytes:
        """An event sent to the client, kept for the retries of its Idempotency-Key."""
        self._sent.append(event)
        return event

    def transcript(self) -> bytes:
        return b"".join(self._sent)

    def streaming_response(
        self, body: AsyncIterator[bytes], headers: Mapping[str, str]
    ) -> SettledStreamingResponse:
        """Hand the call to a streamed response, which settles it when the stream ends."""
        self._handed_over = True
        return SettledStreamingResponse(
            body,
            close=self._client_left,
            headers=dict(headers),
            keepalive_s=self._calls.keepalive_s,
        )

    async def _client_left(self) -> None:
        await self.close(client_left=True)

    # -- settling --------------------------------------------------------------------------

    async def settle(
        self,
        store: Store[T] | None = None,
        *,
        answer: Callable[[T | None], StoredResponse] | None = None,
        output: str | bytes | None = None,
    ) -> T | None:
        """The call succeeded: `store` what it produced (in the settlement's transaction),
        keep `answer` for the retries of its Idempotency-Key, record the digest of `output`.
        The database gone: plume.calls.recovery; else, if that cannot be committed, the
        provider was paid all the same: settled as a failure that is charged, error raised."""
        outcome = self._ending("success", output=output)
        kept = Kept(store)
        try:
            return await self._write(outcome, kept.store, answer)
        except Exception as error:
            if database_unreachable(error):
                # Committed or not, unknown: asked, else written again (never twice).
                self._unsettled = functools.partial(self._write, outcome, kept.store, answer)
                done = functools.partial(self._mark_settled, outcome)
                return await settle_again(error, self._calls, self, self._unsettled, kept, done)
            # What was produced is settled all the same, without what `store` would write.
            code = error.code if isinstance(error, SettledElsewhere) else "internal_error"
            with contextlib.suppress(Exception):
                await self._write(self._ending("failure", code, output=output))
            raise

    async def queue(
        self, store: Store[T], *, answer: Callable[[T | None], StoredResponse]
    ) -> T | None:
        """The request was accepted as a job: store it; its reservation stays held until the
        job settles the call (`ProviderCalls.resume`)."""
        return await self._write(self._ending("queued"), store, answer)

    async def fail(self, error: BaseException) -> None:
        """Settle now, as `error` says (a stream that tells its client of an error)."""
        await self.close(error)

    async def close(self, error: BaseException | None = None, *, client_left: bool = False) -> None:
        """Settle as the way the call ended says, unless settled already: never twice. Its
        errors are logged, not raised (the request's own is what its caller needs); the
        database gone, it is tried again in the background (plume.calls.recovery)."""
        if self._settled:
            return
        with anyio.CancelScope(shield=True):
            deltas, self._deltas = self._deltas, None
            await close_quietly(deltas)
            if error is not None:
                outcome = self._failure(error)
            elif client_left:
                outcome = self._gone()
            else:
                logger.error("provider_call_not_settled", kind=self.kind)
                outcome = self._ending("failure", "internal_error")
            write = self._unsettled or functools.partial(self._write, outcome)
            try:
                await write()
            except Exception as failed:
                logger.exception("provider_call_settlement_failed", outcome=outcome.outcome)
                if database_unreachable(failed):  # else the sweep releases its reservation
                    done = functools.partial(self._mark_settled, outcome)
                    settle_later(failed, self._calls, self, write, done)
            finally:
                # Settled, or left to the sweep: nothing more to wait for.
                self._calls.untrack(self)

    def _failure(self, error: BaseException) -> CallOutcome:
        if isinstance(error, PlumeError):
            return self._ending("failure", error.code)
        if isinstance(error, Exception):
            return self._ending("failure", "internal_error")
        # Cancelled, or a generator closed: the client went away.
        return self._gone()

    def _gone(self) -> CallOutcome:
        """The client went away: charged for what the provider was asked, if it was."""
        if self._contacted:
            return self._ending("client_disconnected")
        return self._ending("failure", "client_disconnected")

    def _ending(
        self, outcome: Outcome, error_code: str | None = None, output: str | bytes | None = None
    ) -> CallOutcome:
        self.streamed()
        if output is None and self._last is not None and outcome != "queued":
            output = self._last.text
        return CallOutcome(
            outcome=outcome,
            completion=self._last,
            error_code=error_code,
            totals=self.usage.totals(),
            output_digest=digest(output) if output is not None else None,
        )

    async def _write(
        self,
        outcome: CallOutcome,
        store: Store[T] | None = None,
        answer: Callable[[T | None], StoredResponse] | None = None,
    ) -> T | None:
        if self._settled:
            return None
        if self._settling is not None:
            # A settlement whose caller was cancelled goes on in its task: it stands,
            # unless it fails.
            with contextlib.suppress(Exception):
                await asyncio.shield(self._settling)
            if self._settled:
                return None
        task = asyncio.ensure_future(self._calls.settle(self, outcome, store, answer))
        task.add_done_callback(functools.partial(self._written, outcome))
        self._settling = task
        self._calls.track(task)
        task.add_done_callback(self._calls.untrack)
        result: T | None = await asyncio.shield(task)
        return result

    def _written(self, outcome: CallOutcome, task: asyncio.Future[Any]) -> None:
        """The settlement's task ended (before anyone awaiting it resumes)."""
        if self._settling is task:
            self._settling = None
        if not task.cancelled() and task.exception() is None:
            self._mark_settled(outcome)

    def _mark_settled(self, outcome: CallOutcome) -> None:
        self._settled = True
        self._unsettled = None
        self._calls.untrack(self)
        self._calls.observe(self, outcome)


class ProviderCalls(InFlight):
    """Opens the units of work of provider-backed requests (one per application)."""

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        router: ProviderRouter,
        settlement: Settlement,
        observers: list[CallObserver] | None = None,
        *,
        deadline_s: float = 300.0,
        keepalive_s: float | None = None,
    ) -> None:
        self.session_factory = session_factory
        self.router = router
        self.settlement = settlement
        self.observers = observers or []
        self.deadline_s = deadline_s
        self.keepalive_s = keepalive_s
        InFlight.__init__(self)

    def open(
        self,
        session: AsyncSession | FirstConnection,
        principal: Principal,
        facts: RequestFacts,
        *,
        kind: str,
        route: Route,
        estimate: Estimate,
        fields: Mapping[str, Any] | None = None,
    ) -> ProviderCall:
        """A call reserved in `session`, the request's first transaction (holding nothing
        else), when its block is entered; `fields` is what a `refuse` policy inspects."""
        return ProviderCall(
            self,
            principal,
            facts,
            kind=kind,
            route=route,
            estimate=estimate,
            session=session,
            fields=fields,
        )

    def resume(
        self,
        principal: Principal,
        facts: RequestFacts,
        *,
        kind: str,
        route: Route,
        estimate: Estimate,
        reservation_id: uuid.UUID | None,
        draft_id: uuid.UUID,
    ) -> ProviderCall:
        """The call of a request accepted as a job, reserved when it was accepted."""
        return ProviderCall(
            self,
            principal,
            facts,
            kind=kind,
            route=route,
            estimate=estimate,
            reservation_id=reservation_id,
            draft_id=draft_id,
        )

    async def settle(
        self,
        call: ProviderCall,
        outcome: CallOutcome,
        store: Store[T] | None,
        answer: Callable[[T | None], StoredResponse] | None,
    ) -> T | None:
        """Phase 3, whatever happened, never interrupted: `store`'s result, the usage and
        the audit entry are committed together or not at all."""
        completion = outcome.completion
        logger.info(
            "provider_request",
            kind=call.kind,
            model_group=call.route.group.name,
            outcome=outcome.outcome,
            error_code=outcome.error_code,
            provider=completion.provider if completion else None,
            model=completion.model if completion else None,
            fallbacks=completion.fallbacks if completion else None,
            prompt_tokens=outcome.totals.prompt_tokens,
            completion_tokens=outcome.totals.completion_tokens,
            duration_ms=round((time.perf_counter() - call.started) * 1000, 1),
        )
        result: T | None = None
        with anyio.CancelScope(shield=True):
            factory = self.session_factory  # a chat without an Idempotency-Key: no session
            if store is None and await self.settlement.written_alone(factory, call, outcome):
                return None
            async with factory() as session, session.begin():
                await enter_tenant_context(session, call.principal.scope)
                if store is not None:
                    result = await store(session)
                response = answer(result) if answer is not None else None
                await self.settlement.write(session, call, outcome, response)
        return result

    def observe(self, call: ProviderCall, outcome: CallOutcome) -> None:
        """Only once committed: a settlement rolled back is settled again, counted once."""
        for observer in self.observers:
            observer.observe(call, outcome)
