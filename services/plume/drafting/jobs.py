"""The synthèse job worker: every API process runs one; PostgreSQL hands out the jobs."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from plume.calls.context import BACKGROUND, Usage
from plume.calls.unit import ProviderCalls, SettledElsewhere
from plume.credentials.auth import principal_for_background_work
from plume.db import TenantScope, enter_tenant_context
from plume.drafting import synthese
from plume.drafting.finishing import FinishedDocument
from plume.drafting.records import apply_document
from plume.drafting.repository import DraftRepository, SyntheseJobQueue
from plume.drafting.schemas import SyntheseRequest
from plume.drafting.service import DraftingService
from plume.drafting.synthese import JobSettings
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
    ) -> None:
        self.session_factory = session_factory
        self.service = service
        self.calls = calls
        self.settings = settings or JobSettings()
        self.wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name="plume-synthese-worker")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def run(self) -> None:
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
            claimed = await SyntheseJobQueue(session).claim(self.settings.lease)
        if claimed is None:
            return False
        await self._process(*claimed)
        return True

    async def _process(self, draft_id: uuid.UUID, organization_id: uuid.UUID) -> None:
        # The job names its tenant; it is read under that tenant's own scope.
        scope = TenantScope(frozenset([organization_id]))
        async with self.session_factory() as session, session.begin():
            await enter_tenant_context(session, scope)
            draft = await DraftRepository(session, scope).get(draft_id)
            if draft is None or draft.status is not DraftStatus.PROCESSING:
                return
            key_id = draft.created_by_key_id
            reservation_id = draft.reservation_id
            attempts = draft.attempts
            request = dict(draft.request)
            group = draft.model_group
        try:
            async with self.session_factory() as session, session.begin():
                principal = await principal_for_background_work(session, organization_id, key_id)
        except PlumeError as error:
            await self._fail(scope, draft_id, error.detail)
            return
        if attempts > self.settings.max_attempts:
            reason = f"Abandonnée après {self.settings.max_attempts} tentatives interrompues."
            await self._fail(principal.scope, draft_id, reason)
            return
        lease = asyncio.create_task(self._keep_lease(draft_id))
        try:
            route = self.service.route_for(principal, "synthese", group)
            payload = SyntheseRequest.model_validate({**request, "kind": "synthese"})
            parts = await synthese.plan(self.service.policy, route, payload)

            async def progress(done: int, total: int) -> None:
                async with self.session_factory() as session, session.begin():
                    await SyntheseJobQueue(session).extend(
                        draft_id, self.settings.lease, {"done": done, "total": total}
                    )

            async with self.calls.resume(
                principal,
                BACKGROUND,
                kind="synthese",
                route=route,
                estimate=synthese.estimate(self.service.policy, route, parts),
                reservation_id=reservation_id,
                draft_id=draft_id,
            ) as call:
                document = await synthese.summarise(call, payload, parts, progress)
                await call.settle(self._completed(principal.scope, draft_id, document, call.usage))
        except SettledElsewhere:
            logger.warning("synthese_finished_elsewhere", draft_id=str(draft_id))
            return
        except Exception as error:
            reason = (
                error.detail
                if isinstance(error, PlumeError)
                else "Erreur interne pendant la synthèse ; l'opérateur en est informé."
            )
            if not isinstance(error, PlumeError):
                logger.exception("synthese_job_error", draft_id=str(draft_id))
            await self._fail(principal.scope, draft_id, reason)
            return
        finally:
            lease.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await lease
        logger.info("synthese_done", draft_id=str(draft_id))

    async def _keep_lease(self, draft_id: uuid.UUID) -> None:
        """Renew the lease while the job runs: one provider call may outlast it."""
        interval = max(1.0, self.settings.lease.total_seconds() / 3)
        while True:
            await asyncio.sleep(interval)
            try:
                async with self.session_factory() as session, session.begin():
                    await SyntheseJobQueue(session).renew(draft_id, self.settings.lease)
            except Exception:
                # A blip must not let the lease lapse for good: try again next time.
                logger.warning("synthese_lease_not_renewed", draft_id=str(draft_id))

    @staticmethod
    def _completed(
        scope: TenantScope, draft_id: uuid.UUID, document: FinishedDocument, usage: Usage
    ) -> Callable[[AsyncSession], Awaitable[None]]:
        """The job's draft, written with its settlement."""

        async def complete(session: AsyncSession) -> None:
            repository = DraftRepository(session, scope)
            draft = await repository.get(draft_id, for_update=True)
            if draft is None or draft.status is not DraftStatus.PROCESSING:
                # Another worker finished it (this one lost its lease): roll back, so the
                # request is neither charged nor recorded twice.
                raise SettledElsewhere()
            apply_document(draft, document, usage)
            draft.status = DraftStatus.DRAFT
            draft.locked_until = None
            await repository.save(draft)

        return complete

    async def _fail(self, scope: TenantScope, draft_id: uuid.UUID, reason: str) -> None:
        async with self.session_factory() as session, session.begin():
            await enter_tenant_context(session, scope)
            repository = DraftRepository(session, scope)
            draft = await repository.get(draft_id, for_update=True)
            if draft is None or draft.status is not DraftStatus.PROCESSING:
                return
            draft.status = DraftStatus.FAILED
            draft.failure_reason = reason
            draft.locked_until = None
            await repository.save(draft)
            if draft.reservation_id is not None:
                # Nothing is charged for a failed job.
                await QuotaGuard.release(session, draft.reservation_id)
        logger.warning("synthese_failed", draft_id=str(draft_id))
