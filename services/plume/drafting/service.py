"""Drafting: policy, prompts, the provider call, parsing, checking, classifying, storing."""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import anyio
import structlog
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from plume.audit.recorder import digest
from plume.credentials.auth import Principal
from plume.drafting import actes
from plume.drafting.checker import check_act
from plume.drafting.document import (
    ACT_KINDS,
    AI_NOTICE,
    ActeNature,
    DraftWarning,
    Sections,
    TenantIdentity,
)
from plume.drafting.offline import TODO, compose
from plume.drafting.parsing import parse_act
from plume.drafting.prompts import build_messages, read_fenced_request
from plume.drafting.repository import DraftRepository
from plume.drafting.schemas import (
    DraftOut,
    Reviewer,
    ReviewOut,
    ReviewRequest,
    SyntheseRequest,
    UsageOut,
    request_fields,
)
from plume.errors import (
    Conflict,
    InternalError,
    KindDisabled,
    NotFound,
    PlumeError,
    ProviderUnavailable,
)
from plume.models import Draft, DraftStatus
from plume.pagination import PageRequest
from plume.provider_calls import (
    CallContext,
    CallOutcome,
    Estimate,
    ProviderCalls,
    StoredResponse,
    Totals,
)
from plume.routing.router import Completion, ProviderRouter, Route, StreamState, offline_provider
from plume.routing.tokens import count_text_tokens

logger = structlog.get_logger("plume.drafting")

_ACTES_LINE = re.compile(
    r"^\s*\**Nature ACTES\**\s*:\s*\**\s*([0-9]{1,2}(?:\.[0-9]{1,2})*)\**.*$",
    re.MULTILINE | re.IGNORECASE,
)
_HEADING = re.compile(r"^#{1,3}\s+(.+)$", re.MULTILINE)
_KIND_LABELS = {
    "arrete": "arrêté",
    "deliberation": "délibération",
    "courrier": "courrier",
    "bulletin_article": "article de bulletin",
    "synthese": "synthèse",
}
PROMPT_OVERHEAD_TOKENS = 1_000


def _offline_composer(messages: list[dict[str, Any]]) -> str | None:
    fenced = read_fenced_request(messages)
    return compose(*fenced) if fenced is not None else None


# The offline provider answers drafting prompts with documents built from the request.
if _offline_composer not in offline_provider.composers:
    offline_provider.composers.append(_offline_composer)


@dataclass(slots=True)
class FinishedDocument:
    title: str | None
    text: str
    sections: Sections | None
    warnings: list[DraftWarning]
    acte_nature: ActeNature | None


@dataclass(slots=True)
class Usage:
    provider: str | None = None
    model: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_eur: Decimal = Decimal(0)
    fallbacks: int = 0
    # None as soon as one call's model has unknown parameters: never a partial sum.
    energy_kwh: float | None = 0.0
    gwp_kgco2eq: float | None = 0.0

    def totals(self) -> Totals:
        return Totals(
            self.prompt_tokens,
            self.completion_tokens,
            self.cost_eur,
            self.energy_kwh,
            self.gwp_kgco2eq,
        )

    def add(self, completion: Completion) -> None:
        self.provider = completion.provider
        self.model = completion.model
        self.prompt_tokens += completion.prompt_tokens
        self.completion_tokens += completion.completion_tokens
        self.cost_eur += completion.cost_eur
        self.fallbacks = max(self.fallbacks, completion.fallbacks)
        self.energy_kwh = _plus(self.energy_kwh, completion.energy_kwh)
        self.gwp_kgco2eq = _plus(self.gwp_kgco2eq, completion.gwp_kgco2eq)


def _plus(total: float | None, more: float | None) -> float | None:
    return None if total is None or more is None else total + more


def identity_of(principal: Principal) -> TenantIdentity:
    return TenantIdentity(
        commune_name=principal.organization.name,
        insee_code=principal.organization.insee_code,
        epci_name=principal.epci_name,
        tribunal_administratif=principal.policy.tribunal_administratif,
    )


def finish_document(
    kind: str,
    raw_text: str,
    fields: dict[str, Any],
    identity: TenantIdentity,
    *,
    offline: bool,
) -> FinishedDocument:
    """Turn the provider's answer into the draft: sections, warnings, ACTES nature.

    An answer that cannot be parsed is kept as it is, with a warning: never a failure.
    """
    suggestion = _ACTES_LINE.search(raw_text)
    text = _ACTES_LINE.sub("", raw_text).strip() + "\n"
    warnings: list[DraftWarning] = []
    sections: Sections | None = None
    acte_nature: ActeNature | None = None
    if kind in ACT_KINDS:
        sections, parse_warnings = parse_act(kind, text)
        warnings += parse_warnings
        unparsed = any(w.code == "unparsed_answer" for w in parse_warnings)
        warnings += [
            w
            for w in check_act(kind, sections, text, identity.tribunal_administratif)
            # An answer with no article at all is already said to be unparsed.
            if not (unparsed and w.code == "missing_articles")
        ]
        rule_based = actes.classify(kind, fields)
        acte_nature = actes.merge_suggestion(
            rule_based, None if offline or suggestion is None else suggestion.group(1)
        )
    if offline:
        warnings.append(
            DraftWarning(
                code="offline_draft",
                message=(
                    "Brouillon construit sans IA à partir de vos seuls éléments : relisez-le, "
                    "reformulez si besoin et complétez les passages marqués [À COMPLÉTER]."
                ),
            )
        )
    elif TODO in text:
        warnings.append(
            DraftWarning(
                code="missing_information",
                message="Des informations manquent : complétez les passages marqués [À COMPLÉTER].",
            )
        )
    title = (sections.title if sections and sections.title else None) or fields.get("subject")
    if title is None:
        heading = _HEADING.search(text)
        title = heading.group(1).strip() if heading else _KIND_LABELS.get(kind)
    return FinishedDocument(title, text, sections, warnings, acte_nature)


def draft_out(draft: Draft) -> DraftOut:
    review = None
    if draft.review_decision is not None and draft.reviewed_at is not None:
        review = ReviewOut(
            decision=draft.review_decision,
            reviewer=Reviewer(name=draft.reviewer_name or "", title=draft.reviewer_title or ""),
            comment=draft.review_comment,
            reviewed_at=draft.reviewed_at,
            reviewed_by=draft.reviewed_by_key_id,
        )
    usage = None
    if draft.status is not DraftStatus.PROCESSING:
        usage = UsageOut(
            provider=draft.provider,
            model=draft.model,
            prompt_tokens=draft.prompt_tokens,
            completion_tokens=draft.completion_tokens,
            total_tokens=draft.prompt_tokens + draft.completion_tokens,
            cost_eur=float(draft.cost_eur),
            energy_kwh=draft.energy_kwh,
            gwp_kgco2eq=draft.gwp_kgco2eq,
            fallbacks=draft.fallbacks,
        )
    return DraftOut(
        id=draft.id,
        kind=draft.kind,
        status=draft.status.value,
        title=draft.title,
        text=draft.text,
        sections=Sections.model_validate(draft.sections) if draft.sections else None,
        warnings=[DraftWarning.model_validate(w) for w in draft.warnings],
        acte_nature=ActeNature.model_validate(draft.acte_nature) if draft.acte_nature else None,
        usage=usage,
        ai_notice=draft.ai_notice,
        review=review,
        failure_reason=draft.failure_reason,
        model_group=draft.model_group,
        created_at=draft.created_at,
        created_by=draft.created_by_key_id,
    )


def apply_document(draft: Draft, document: FinishedDocument, usage: Usage) -> None:
    draft.title = document.title
    draft.text = document.text
    draft.sections = document.sections.model_dump() if document.sections else None
    draft.warnings = [w.model_dump() for w in document.warnings]
    draft.acte_nature = document.acte_nature.model_dump() if document.acte_nature else None
    draft.provider = usage.provider
    draft.model = usage.model
    draft.prompt_tokens = usage.prompt_tokens
    draft.completion_tokens = usage.completion_tokens
    draft.cost_eur = usage.cost_eur
    draft.energy_kwh = usage.energy_kwh
    draft.gwp_kgco2eq = usage.gwp_kgco2eq
    draft.fallbacks = usage.fallbacks


def _sse(event: str, payload: BaseModel | dict[str, Any]) -> bytes:
    import json

    data = (
        payload.model_dump_json()
        if isinstance(payload, BaseModel)
        else json.dumps(payload, ensure_ascii=False)
    )
    return f"event: {event}\ndata: {data}\n\n".encode()


@dataclass(slots=True)
class SynthesePlan:
    parts: list[str]
    budget: int
    long: bool


class DraftingService:
    def __init__(self, router: ProviderRouter, calls: ProviderCalls) -> None:
        self.router = router
        self.calls = calls

    # -- planning ----------------------------------------------------------------------

    def plan(self, principal: Principal, kind: str, model_group: str | None) -> Route:
        if kind not in principal.policy.allowed_kinds:
            label = _KIND_LABELS.get(kind, kind)
            raise KindDisabled(
                f"La rédaction de documents de type « {label} » est désactivée par la politique "
                "de votre organisation."
            )
        return self.router.route(model_group, frozenset(principal.policy.allowed_hosting))

    def estimate(
        self,
        principal: Principal,
        route: Route,
        kind: str,
        fields: dict[str, Any],
        max_tokens: int | None,
    ) -> Estimate:
        """The prompt as it will be sent, counted, and the most the answer may take."""
        messages = build_messages(kind, identity_of(principal), fields)
        return Estimate(
            prompt_tokens=sum(count_text_tokens(m["content"]) for m in messages),
            output_tokens=self.router.output_cap(route, max_tokens),
        )

    def estimate_long_synthese(self, route: Route, plan: SynthesePlan) -> Estimate:
        """An upper bound for a synthèse in parts: each part at most `budget` tokens, then
        the final call reading every part's summary."""
        cap = self.router.output_cap(route, None)
        parts = len(plan.parts)
        return Estimate(
            prompt_tokens=parts * (plan.budget + PROMPT_OVERHEAD_TOKENS)
            + parts * cap
            + PROMPT_OVERHEAD_TOKENS,
            output_tokens=cap,
            calls=parts + 1,
        )

    async def plan_synthese(self, route: Route, payload: SyntheseRequest) -> SynthesePlan:
        window = self.router.context_window(route)
        budget = max(512, window - route.max_output_tokens - PROMPT_OVERHEAD_TOKENS)
        text = payload.source_text
        if len(text) <= budget * 2:  # French text runs at more than 2 characters a token
            return SynthesePlan([text], budget, long=False)
        parts = await anyio.to_thread.run_sync(split_by_tokens, text, budget)
        return SynthesePlan(parts, budget, long=len(parts) > 1)

    # -- storing -----------------------------------------------------------------------

    def _new_row(
        self, principal: Principal, kind: str, fields: dict[str, Any], route: Route
    ) -> Draft:
        return Draft(
            id=uuid.uuid4(),
            organization_id=principal.organization_id,
            created_by_key_id=principal.key_id,
            kind=kind,
            status=DraftStatus.DRAFT,
            title=fields.get("subject"),
            request=fields,
            model_group=route.group.name,
            text="",
            warnings=[],
            ai_notice=AI_NOTICE,
        )

    async def _store(
        self,
        context: CallContext,
        row: Draft,
        document: FinishedDocument,
        usage: Usage,
        completion: Completion | None,
    ) -> DraftOut:
        apply_document(row, document, usage)

        context.draft_id = row.id
        context.output_digest = digest(row.text)

        async def work(session: AsyncSession) -> DraftOut:
            stored = draft_out(await DraftRepository(session, context.principal.scope).add(row))
            if context.responder is not None:
                context.response = context.responder(stored)
            return stored

        try:
            stored = await self.calls.after(
                context, CallOutcome("success", completion, totals=usage.totals()), work
            )
        except Exception:
            # Nothing was stored: settle the call as a failure, in a transaction of its own.
            await self.calls.after(
                context, CallOutcome("failure", completion, error_code="internal_error")
            )
            raise
        assert stored is not None
        return stored

    # -- one-shot drafting -----------------------------------------------------------------

    async def create(
        self, context: CallContext, kind: str, fields: dict[str, Any], max_tokens: int | None
    ) -> DraftOut:
        identity = identity_of(context.principal)
        messages = build_messages(kind, identity, fields)
        completion = await self._complete(context, messages, max_tokens)
        document = finish_document(
            kind, completion.text, fields, identity, offline=completion.provider == "offline"
        )
        usage = Usage()
        usage.add(completion)
        row = self._new_row(context.principal, kind, fields, context.route)
        return await self._store(context, row, document, usage, completion)

    async def _complete(
        self, context: CallContext, messages: list[dict[str, str]], max_tokens: int | None
    ) -> Completion:
        try:
            return await self.router.complete(context.route, messages, max_tokens=max_tokens)
        except asyncio.CancelledError:
            await self.calls.after(context, CallOutcome("client_disconnected"))
            raise
        except Exception as error:
            code = error.code if isinstance(error, PlumeError) else "internal_error"
            await self.calls.after(context, CallOutcome("failure", error_code=code))
            raise

    # -- streaming -------------------------------------------------------------------------

    async def stream(
        self, context: CallContext, kind: str, fields: dict[str, Any], max_tokens: int | None
    ) -> AsyncIterator[bytes]:
        """`delta` events with the text, then one `draft` event, or one `error` event."""
        identity = identity_of(context.principal)
        messages = build_messages(kind, identity, fields)
        state = StreamState()
        prompt_tokens = sum(count_text_tokens(m["content"]) for m in messages)
        outcome = "failure"
        error_code: str | None = None
        sent: list[bytes] = []  # what the client received, for Idempotency-Key retries
        context.responder = lambda draft: StoredResponse(
            200, "text/event-stream", b"".join(sent) + _sse("draft", draft)
        )
        try:
            async for delta in self.router.stream(
                context.route, messages, state, max_tokens=max_tokens
            ):
                event = _sse("delta", {"text": delta})
                sent.append(event)
                yield event
            completion = self.router.settle_stream(state, prompt_tokens, context.started)
            if completion is None:
                raise ProviderUnavailable()
            document = finish_document(
                kind, completion.text, fields, identity, offline=completion.provider == "offline"
            )
            usage = Usage()
            usage.add(completion)
            row = self._new_row(context.principal, kind, fields, context.route)
            outcome = "settled"  # _store settles the call, whether it stores or fails
            stored = await self._store(context, row, document, usage, completion)
            outcome = "success"
            yield _sse("draft", stored)
        except PlumeError as error:
            error_code = error.code
            yield _sse("error", error.problem(context.request_id))
        except (asyncio.CancelledError, GeneratorExit):
            if outcome not in ("success", "settled"):
                outcome = "client_disconnected"
            raise
        except Exception:
            logger.exception("draft_stream_error")
            error_code = "internal_error"
            yield _sse("error", InternalError().problem(context.request_id))
        finally:
            if outcome not in ("success", "settled"):
                completion = self.router.settle_stream(state, prompt_tokens, context.started)
                await self.calls.after(
                    context,
                    CallOutcome(outcome, completion, error_code),  # type: ignore[arg-type]
                )

    def release(self, context: CallContext) -> Callable[[], Awaitable[None]]:
        """For a stream whose client left before it started: nothing was asked of the
        provider, so the call is released as a failure (nothing charged)."""

        async def abandon() -> None:
            await self.calls.after(
                context, CallOutcome("failure", error_code="client_disconnected")
            )

        return abandon

    # -- synthèse of long documents --------------------------------------------------------

    async def enqueue_synthese(self, context: CallContext, fields: dict[str, Any]) -> DraftOut:
        """Store the job; any API process will pick it up."""
        row = self._new_row(context.principal, "synthese", fields, context.route)
        row.status = DraftStatus.PROCESSING
        row.title = "Synthèse en cours"
        row.progress = {"done": 0, "total": 0}

        context.draft_id = row.id

        async def work(session: AsyncSession) -> DraftOut:
            row.reservation_id = context.reservation_id
            stored = draft_out(await DraftRepository(session, context.principal.scope).add(row))
            if context.responder is not None:
                context.response = context.responder(stored)
            return stored

        stored = await self.calls.after(context, CallOutcome("deferred"), work)
        assert stored is not None
        return stored

    async def summarise(
        self,
        context: CallContext,
        payload: SyntheseRequest,
        plan: SynthesePlan,
        on_progress: Callable[[int, int], Awaitable[None]] | None = None,
        usage: Usage | None = None,
    ) -> tuple[FinishedDocument, Usage, Completion]:
        """Summarise each part, then the summaries (again if they are still too long).

        `usage` accumulates as calls complete, so an interrupted synthèse can be settled
        with what it did consume."""
        identity = identity_of(context.principal)
        request = request_fields(payload)
        usage = usage if usage is not None else Usage()
        parts = plan.parts
        done = 0
        total = len(parts) if len(parts) > 1 else 0
        while len(parts) > 1:
            summaries: list[str] = []
            for index, part in enumerate(parts, start=1):
                messages = build_messages(
                    "synthese",
                    identity,
                    {**request, "source_text": part},
                    template="synthese_part",
                    extra={"part": index, "parts": len(parts)},
                )
                completion = await self.router.complete(context.route, messages)
                usage.add(completion)
                summaries.append(completion.text.strip())
                done += 1
                if on_progress is not None:
                    await on_progress(done, total)
            joined = "\n\n".join(summaries)
            parts = (
                await anyio.to_thread.run_sync(split_by_tokens, joined, plan.budget)
                if count_text_tokens(joined) > plan.budget
                else [joined]
            )
            total += len(parts) if len(parts) > 1 else 0
        messages = build_messages("synthese", identity, {**request, "source_text": parts[0]})
        completion = await self.router.complete(
            context.route, messages, max_tokens=payload.max_output_tokens
        )
        usage.add(completion)
        document = finish_document(
            "synthese",
            completion.text,
            request,
            identity,
            offline=completion.provider == "offline",
        )
        return document, usage, completion

    async def synthese_stream(
        self, context: CallContext, payload: SyntheseRequest, plan: SynthesePlan
    ) -> AsyncIterator[bytes]:
        """A long synthèse inline: `progress` events, then the `draft` (or `error`)."""
        queue: asyncio.Queue[tuple[int, int]] = asyncio.Queue()

        async def progress(done: int, total: int) -> None:
            queue.put_nowait((done, total))

        consumed = Usage()
        task = asyncio.create_task(self.summarise(context, payload, plan, progress, consumed))
        getter: asyncio.Task[tuple[int, int]] | None = None
        sent: list[bytes] = []  # what the client received, for Idempotency-Key retries
        context.responder = lambda draft: StoredResponse(
            200, "text/event-stream", b"".join(sent) + _sse("draft", draft)
        )
        try:
            while not task.done():
                getter = asyncio.create_task(queue.get())
                finished, _ = await asyncio.wait(
                    {task, getter}, return_when=asyncio.FIRST_COMPLETED
                )
                if getter in finished:
                    done, total = getter.result()
                    event = _sse("progress", {"done": done, "total": total})
                    sent.append(event)
                    yield event
            document, usage, completion = task.result()
            row = self._new_row(
                context.principal, "synthese", request_fields(payload), context.route
            )
            yield _sse("draft", await self._store(context, row, document, usage, completion))
        except (asyncio.CancelledError, GeneratorExit):
            await self.calls.after(
                context, CallOutcome("client_disconnected", totals=consumed.totals())
            )
            raise
        except Exception as error:
            problem = error if isinstance(error, PlumeError) else InternalError()
            if not isinstance(error, PlumeError):
                logger.exception("synthese_stream_error")
            if not task.done() or task.exception() is not None:
                await self.calls.after(context, CallOutcome("failure", error_code=problem.code))
            yield _sse("error", problem.problem(context.request_id))
        finally:
            for pending in (task, getter):
                if pending is not None and not pending.done():
                    pending.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await pending

    # -- reading and reviewing -------------------------------------------------------------

    async def get(self, session: AsyncSession, principal: Principal, draft_id: uuid.UUID) -> Draft:
        """A draft belongs to the organisation it was written for: neither its EPCI nor the
        operator read a commune's documents (they read usage and audit, not texts)."""
        draft = await DraftRepository(session, principal.scope).get(draft_id)
        if draft is None or draft.organization_id != principal.organization_id:
            raise NotFound("Aucun brouillon ne porte cet identifiant.")
        return draft

    async def list_page(
        self,
        session: AsyncSession,
        principal: Principal,
        page: PageRequest,
        kind: str | None,
        status: DraftStatus | None,
    ) -> Sequence[Draft]:
        return await DraftRepository(session, principal.scope).list_page(
            [principal.organization_id], page, kind=kind, status=status
        )

    async def review(
        self,
        session: AsyncSession,
        principal: Principal,
        draft_id: uuid.UUID,
        payload: ReviewRequest,
    ) -> Draft:
        repository = DraftRepository(session, principal.scope)
        draft = await repository.get(draft_id, for_update=True)
        if draft is None or draft.organization_id != principal.organization_id:
            raise NotFound("Aucun brouillon ne porte cet identifiant.")
        if draft.status in (DraftStatus.APPROVED, DraftStatus.REJECTED):
            verdict = "approuvé" if draft.status is DraftStatus.APPROVED else "rejeté"
            when = f"{draft.reviewed_at:%d/%m/%Y}" if draft.reviewed_at else ""
            raise Conflict(
                f"Ce brouillon a déjà été {verdict} par {draft.reviewer_name} le {when} ; "
                "un document relu ne peut plus être modifié."
            )
        if draft.status is not DraftStatus.DRAFT:
            raise Conflict(
                "Ce brouillon n'est pas prêt à être relu "
                f"(état : {draft.status.value}) ; attendez la fin de sa rédaction."
            )
        draft.status = DraftStatus(payload.decision)
        draft.review_decision = payload.decision
        draft.reviewer_name = payload.reviewer.name
        draft.reviewer_title = payload.reviewer.title
        draft.review_comment = payload.comment
        draft.reviewed_at = datetime.now(UTC)
        draft.reviewed_by_key_id = principal.key_id
        return await repository.save(draft)


def split_by_tokens(text: str, budget: int) -> list[str]:
    """Cut on paragraph ends into parts of at most `budget` tokens (hard cut as last resort)."""
    parts: list[str] = []
    current: list[str] = []
    used = 0
    for paragraph in re.split(r"\n\s*\n", text):
        tokens = count_text_tokens(paragraph)
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


@dataclass(slots=True)
class JobSettings:
    poll_interval_s: float = 2.0
    lease: timedelta = field(default_factory=lambda: timedelta(minutes=5))
    max_attempts: int = 3
