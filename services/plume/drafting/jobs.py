"""The synthèse job worker: every API process runs one; PostgreSQL hands out the jobs,
organisations in turn.

A worker holds a job by a lease of its own (a token set when it claims it), renewed while it
works. A worker that finds its lease taken over (its process stalled past the lease, and
another took the job) stops at once — no further provider call — and settles what it
consumed without touching the draft, which is the other worker's now. A worker stopped
with its process (SIGTERM) settles what it consumed too, and gives the job back for another
process to resume."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import anyio
import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from plume.calls.context import BACKGROUND, Interrupted, SettledElsewhere, Usage
from plume.calls.unit import ProviderCall, ProviderCalls
from plume.credentials.auth import principal_for_background_work
from plume.db import TenantScope, enter_tenant_context
from plume.drafting import synthese
from plume.drafting.finishing import FinishedDocument
from plume.drafting.records import apply_document
from plume.drafting.repository import DraftRepository, Lease, SyntheseJobQueue
from plume.drafting.schemas import SyntheseRequest
from plume.drafting.service import DraftingService
from plume.drafting.synthese import Checkpoint, JobSettings, PartLimits
from plume.errors import PlumeError
from plume.models import DraftStatus
from plume.quotas.guard import QuotaGuard

logger = structlog.get_logger("plume.jobs")


class SyntheseWorker:
    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        service: DraftingService,
        calls: ProviderCalls,
        settings: JobSettings | None = None,
        *,
        limits: PartLimits | None = None,
    ) -> None:
        self.session_factory = session_factory
        self.service = service
        self.calls = calls
        self.settings = settings or JobSettings()
        self.limits = limits or PartLimits()
        self.wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._scope: anyio.CancelScope | None = None

    def start(self) -> None:
        self._scope = anyio.CancelScope()
        self._task = asyncio.create_task(self.run(), name="plume-synthese-worker")

    async def stop(self) -> None:
        """Stop, letting the job in progress settle what it consumed: the cancellation is
        anyio's, which the settlement's shield holds off."""
        if self._task is None:
            return
        if self._scope is not None:
            self._scope.cancel()
        else:
            self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def run(self) -> None:
        with self._scope or anyio.CancelScope():
            while True:
                try:
                    worked = await self.run_once()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    logger.exception("synthese_worker_error")
                    worked = False
                if not worked:
                    self.wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.wake.wait(), self.settings.poll_interval_s)

    async def run_once(self) -> bool:
        """Claim and process one job; False when there was none."""
        async with self.session_factory() as session, session.begin():
            lease = await SyntheseJobQueue(session).claim(self.settings.lease)
        if lease is None:
            return False
        await self._process(lease)
        return True

    async def _process(self, held: Lease) -> None:
        draft_id, organization_id = held.draft_id, held.organization_id
        # The job names its tenant; it is read under that tenant's own scope.
        scope = TenantScope(frozenset([organization_id]))
        async with self.session_factory() as session, session.begin():
            await enter_tenant_context(session, scope)
            draft = await DraftRepository(session, scope).get(draft_id)
            if draft is None or draft.status is not DraftStatus.PROCESSING:
                return
            key_id, client_id = draft.created_by_key_id, draft.created_by_client_id
            reservation_id = draft.reservation_id
            attempts = draft.attempts
            known = dict(draft.part_summaries or {})
            request = dict(draft.request)
            group = draft.model_group
        try:
            async with self.session_factory() as session, session.begin():
                principal = await principal_for_background_work(
                    session, organization_id, key_id, client_id
                )
        except PlumeError as error:
            await self._fail(scope, held, error.detail)
            return
        if attempts > self.settings.max_attempts:
            reason = f"Abandonnée après {self.settings.max_attempts} tentatives interrompues."
            await self._fail(principal.scope, held, reason)
            return
        try:
            route = self.service.route_for(principal, "synthese", group)
            payload = SyntheseRequest.model_validate({**request, "kind": "synthese"})
            parts = await synthese.plan(self.service.policy, route, payload)
            async with self.calls.resume(
                principal,
                BACKGROUND,
                kind="synthese",
                route=route,
                estimate=synthese.estimate(self.service.policy, route, parts),
                reservation_id=reservation_id,
                draft_id=draft_id,
            ) as call:
                document = await self._summarise(call, held, payload, parts, known)
                await call.settle(self._completed(principal.scope, held, document, call.usage))
        except SettledElsewhere:
            # Its call settled what it consumed; the draft is the other worker's.
            logger.warning("synthese_lease_lost", draft_id=str(draft_id))
            return
        except Exception as error:
            reason = (
                error.detail
                if isinstance(error, PlumeError)
                else "Erreur interne pendant la synthèse ; l'opérateur en est informé."
            )
            if not isinstance(error, PlumeError):
                logger.exception("synthese_job_error", draft_id=str(draft_id))
            await self._fail(principal.scope, held, reason)
            return
        logger.info("synthese_done", draft_id=str(draft_id))

    async def _summarise(
        self,
        call: ProviderCall,
        held: Lease,
        payload: SyntheseRequest,
        parts: synthese.SynthesePlan,
        known: dict[str, str],
    ) -> FinishedDocument:
        """The provider work, under this worker's lease: stopped as soon as the lease is
        found to be another's (no provider call after that), or the process stops (the
        call settles what it consumed, the job is given back)."""

        async def progress(done: int, total: int, summarised: Checkpoint | None) -> None:
            async with self.session_factory() as session, session.begin():
                progress = {"done": done, "total": total}
                queue = SyntheseJobQueue(session)
                if not await queue.extend(held, self.settings.lease, progress, summarised):
                    raise SettledElsewhere()

        try:
            with anyio.CancelScope() as work:
                keeper = asyncio.create_task(self._keep_lease(held, work))
                try:
                    document = await synthese.summarise(
                        call, payload, parts, progress, limits=self.limits, known=known
                    )
                finally:
                    keeper.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await keeper
        except anyio.get_cancelled_exc_class():
            with anyio.CancelScope(shield=True):
                await call.fail(Interrupted())
                async with self.session_factory() as session, session.begin():
                    await SyntheseJobQueue(session).release(held)
            logger.warning("synthese_interrupted", draft_id=str(held.draft_id))
            raise
        if work.cancel_called:
            raise SettledElsewhere()  # stopped by the keeper: the lease is another worker's
        return document

    async def _keep_lease(self, held: Lease, work: anyio.CancelScope) -> None:
        """Renew the lease while the job runs (one provider call may outlast it); stop the
        work if the lease turns out to be another worker's."""
        interval = max(1.0, self.settings.lease.total_seconds() / 3)
        while True:
            await asyncio.sleep(interval)
            try:
                async with self.session_factory() as session, session.begin():
                    kept = await SyntheseJobQueue(session).renew(held, self.settings.lease)
            except Exception:
                # A blip must not let the lease lapse for good: try again next time.
                logger.warning("synthese_lease_not_renewed", draft_id=str(held.draft_id))
                continue
            if not kept:
                work.cancel()
                return

    @staticmethod
    def _completed(
        scope: TenantScope, held: Lease, document: FinishedDocument, usage: Usage
    ) -> Callable[[AsyncSession], Awaitable[None]]:
        """The job's draft, written with its settlement, if its lease is still this
        worker's."""

        async def complete(session: AsyncSession) -> None:
            repository = DraftRepository(session, scope)
            draft = await repository.get(held.draft_id, for_update=True)
            if (
                draft is None
                or draft.status is not DraftStatus.PROCESSING
                or draft.lease_token != held.token
            ):
                # Another worker holds it, or finished it: this settlement rolls back, and
                # the call settles what it consumed without the draft.
                raise SettledElsewhere()
            apply_document(draft, document, usage)
            draft.part_summaries = None
            draft.status = DraftStatus.DRAFT
            draft.locked_until = None
            draft.lease_token = None
            await repository.save(draft)

        return complete

    async def _fail(self, scope: TenantScope, held: Lease, reason: str) -> None:
        async with self.session_factory() as session, session.begin():
            await enter_tenant_context(session, scope)
            repository = DraftRepository(session, scope)
            draft = await repository.get(held.draft_id, for_update=True)
            if (
                draft is None
                or draft.status is not DraftStatus.PROCESSING
                or draft.lease_token != held.token
            ):
                return
            draft.status = DraftStatus.FAILED
            draft.failure_reason = reason
            draft.part_summaries = None
            draft.locked_until = None
            draft.lease_token = None
            await repository.save(draft)
            if draft.reservation_id is not None:
                # What its call consumed was settled by the call; what it held is released
                # (a no-op once the call settled it).
                await QuotaGuard.release(session, draft.reservation_id)
        logger.warning("synthese_failed", draft_id=str(held.draft_id))
