"""Drafting: which route a request takes, what it may cost, the provider call that writes the
document (one-shot or streamed), storing the draft with its settlement; reading and
reviewing drafts. Long synthèses are plume.drafting.synthese's."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

import anyio
import structlog
from fastapi import status
from sqlalchemy.ext.asyncio import AsyncSession

from plume.calls.context import Estimate, StoredResponse
from plume.calls.unit import ProviderCall
from plume.credentials.auth import Principal
from plume.drafting.document import AI_NOTICE, TenantIdentity
from plume.drafting.finishing import FinishedDocument, finish_document, identity_of
from plume.drafting.prompts import build_messages
from plume.drafting.records import apply_document, draft_out, stored_answer, streamed_answer
from plume.drafting.repository import DraftRepository
from plume.drafting.schemas import DraftOut, ReviewRequest
from plume.errors import (
    Conflict,
    Forbidden,
    InternalError,
    KindDisabled,
    NotFound,
    PlumeError,
    ProviderUnavailable,
    invalid_field,
)
from plume.french import KIND_NOUNS
from plume.identity.service import AgentService
from plume.models import Draft, DraftStatus
from plume.routing.policy import RoutingPolicy
from plume.routing.tokens import count_text_tokens
from plume.routing.types import Completion, Route
from plume.web.pagination import PageRequest
from plume.web.sse import sse

logger = structlog.get_logger("plume.drafting")

# A prompt up to this many characters is counted on the event loop (a few milliseconds at
# most); a longer one in a worker thread.
_COUNT_ON_LOOP_CHARS = 16_384


class DraftingService:
    def __init__(self, policy: RoutingPolicy) -> None:
        self.policy = policy

    # -- before the call -------------------------------------------------------------------

    def route_for(self, principal: Principal, kind: str, model_group: str | None) -> Route:
        if kind not in principal.policy.allowed_kinds:
            label = KIND_NOUNS.get(kind, kind)
            raise KindDisabled(
                f"La rédaction de documents de type « {label} » est désactivée par la politique "
                "de votre organisation."
            )
        return self.policy.route(model_group, frozenset(principal.policy.allowed_hosting))

    async def estimate(
        self,
        principal: Principal,
        route: Route,
        kind: str,
        fields: dict[str, Any],
        max_tokens: int | None,
    ) -> Estimate:
        """The prompt as it will be sent, counted, and the most the answer may take."""
        messages = build_messages(kind, identity_of(principal), fields)
        contents = [m["content"] for m in messages]
        if sum(len(content) for content in contents) <= _COUNT_ON_LOOP_CHARS:
            prompt_tokens = _count(contents)
        else:
            prompt_tokens = await anyio.to_thread.run_sync(_count, contents)
        return Estimate(
            prompt_tokens=prompt_tokens,
            output_tokens=self.policy.output_cap(route, max_tokens),
        )

    # -- the call --------------------------------------------------------------------------

    async def create(
        self, call: ProviderCall, kind: str, fields: dict[str, Any], max_tokens: int | None
    ) -> DraftOut:
        identity = identity_of(call.principal)
        messages = build_messages(kind, identity, fields)
        completion = await call.complete(messages, max_tokens=max_tokens)
        document = await finish(kind, completion, fields, identity)
        return await store(
            call, kind, fields, document, partial(stored_answer, status.HTTP_201_CREATED)
        )

    async def stream(
        self, call: ProviderCall, kind: str, fields: dict[str, Any], max_tokens: int | None
    ) -> AsyncIterator[bytes]:
        """`delta` events with the text, then one `draft` event, or one `error` event."""
        identity = identity_of(call.principal)
        messages = build_messages(kind, identity, fields)
        try:
            async for delta in call.stream(messages, max_tokens=max_tokens):
                yield call.sent(sse({"text": delta}, "delta"))
            completion = call.streamed()
            if completion is None:
                raise ProviderUnavailable()
            document = await finish(kind, completion, fields, identity)
            draft = await store(
                call, kind, fields, document, partial(streamed_answer, call.transcript)
            )
            yield sse(draft, "draft")
        except PlumeError as error:
            await call.fail(error)
            yield sse(error.problem(call.facts.request_id), "error")
        except Exception as error:
            logger.exception("draft_stream_error")
            await call.fail(error)
            yield sse(InternalError().problem(call.facts.request_id), "error")

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
        if draft.status is DraftStatus.ERASED:
            raise Conflict("Ce brouillon a été effacé : il ne peut plus être relu.")
        if draft.status is not DraftStatus.DRAFT:
            raise Conflict(
                "Ce brouillon n'est pas prêt à être relu "
                f"(état : {draft.status.value}) ; attendez la fin de sa rédaction."
            )
        name, title = await self._reviewer(session, principal, draft, payload)
        draft.status = DraftStatus(payload.decision)
        draft.review_decision = payload.decision
        draft.reviewer_name = name
        draft.reviewer_title = title
        draft.review_comment = payload.comment
        draft.reviewed_at = datetime.now(UTC)
        draft.reviewed_by_key_id = principal.key_id
        draft.reviewed_by_agent_id = principal.agent_id
        return await repository.save(draft)

    async def edit(
        self, session: AsyncSession, principal: Principal, draft_id: uuid.UUID, text: str
    ) -> Edited:
        """Replace a draft's text before its review: its sections are parsed again and the
        checker runs again on what the person wrote (the same rules as for a model's answer,
        without the offline notice), so the warnings speak of the text as it now is."""
        repository = DraftRepository(session, principal.scope)
        draft = await repository.get(draft_id, for_update=True)
        if draft is None or draft.organization_id != principal.organization_id:
            raise NotFound("Aucun brouillon ne porte cet identifiant.")
        if draft.status is not DraftStatus.DRAFT:
            raise Conflict(_not_editable(draft.status))
        before = draft.text
        document = await anyio.to_thread.run_sync(
            partial(
                finish_document,
                draft.kind,
                text,
                draft.request or {},
                identity_of(principal),
                offline=False,
            )
        )
        draft.title = document.title
        draft.text = document.text
        draft.sections = document.sections.model_dump() if document.sections else None
        draft.warnings = [w.model_dump() for w in document.warnings]
        draft.acte_nature = document.acte_nature.model_dump() if document.acte_nature else None
        return Edited(await repository.save(draft), before)

    async def _reviewer(
        self, session: AsyncSession, principal: Principal, draft: Draft, payload: ReviewRequest
    ) -> tuple[str, str]:
        """Who signs the review: a signed-in agent as its record says (verified; a name in
        the body is refused rather than silently replaced), else the name a key or a client
        declares (not verified), which the organisation's policy may refuse for some kinds."""
        if principal.agent_id is not None:
            if payload.reviewer is not None:
                raise invalid_field(
                    "reviewer",
                    "Connecté(e) par ProConnect, vous relisez sous votre propre nom : "
                    "n'indiquez pas de relecteur.",
                )
            agent = await AgentService(session, principal.scope).get(principal.agent_id)
            return agent.display_name, agent.title or ""
        if draft.kind in principal.policy.verified_review_required:
            noun = KIND_NOUNS.get(draft.kind, draft.kind)
            raise Forbidden(
                f"Votre organisation exige que la relecture de ce document ({noun}) soit faite "
                "par un agent connecté par ProConnect (identité vérifiée) : une clé d'API ne "
                "peut ni l'approuver ni le rejeter."
            )
        if payload.reviewer is None:
            raise invalid_field(
                "reviewer", "Obligatoire : le nom et la fonction de la personne qui relit."
            )
        return payload.reviewer.name, payload.reviewer.title


@dataclass(frozen=True, slots=True)
class Edited:
    draft: Draft
    text_before: str


def _not_editable(status: DraftStatus) -> str:
    if status in (DraftStatus.APPROVED, DraftStatus.REJECTED):
        return "Ce brouillon a déjà été relu : un document relu ne peut plus être modifié."
    if status is DraftStatus.ERASED:
        return "Ce brouillon a été effacé : son texte n'existe plus."
    return (
        f"Ce brouillon n'est pas modifiable (état : {status.value}) ; attendez la fin de sa "
        "rédaction."
    )


def _count(contents: list[str]) -> int:
    return sum(count_text_tokens(content) for content in contents)


async def finish(
    kind: str, completion: Completion, fields: dict[str, Any], identity: TenantIdentity
) -> FinishedDocument:
    """The answer made a draft (parsed, checked, classified) in a worker thread: a long
    answer takes CPU time the event loop must not wait for, serving everyone else."""
    return await anyio.to_thread.run_sync(
        partial(
            finish_document,
            kind,
            completion.text,
            fields,
            identity,
            offline=completion.provider == "offline",
        )
    )


def new_row(
    principal: Principal,
    kind: str,
    fields: dict[str, Any],
    route: Route,
    *,
    draft_id: uuid.UUID | None = None,
) -> Draft:
    return Draft(
        id=draft_id or uuid.uuid4(),
        organization_id=principal.organization_id,
        created_by_key_id=principal.key_id,
        created_by_client_id=principal.client_id,
        created_by_agent_id=principal.agent_id,
        kind=kind,
        status=DraftStatus.DRAFT,
        title=fields.get("subject"),
        request=fields,
        model_group=route.group.name,
        text="",
        warnings=[],
        ai_notice=AI_NOTICE,
    )


async def store(
    call: ProviderCall,
    kind: str,
    fields: dict[str, Any],
    document: FinishedDocument,
    answer: Callable[[DraftOut | None], StoredResponse],
) -> DraftOut:
    """Store the draft and settle its call, in one transaction; `answer` is what retries of
    its Idempotency-Key get."""
    draft_id = uuid.uuid4()
    call.draft_id = draft_id

    def row() -> Draft:
        made = new_row(call.principal, kind, fields, call.route, draft_id=draft_id)
        apply_document(made, document, call.usage)
        return made

    async def add(session: AsyncSession) -> DraftOut:
        # A new instance each time: a settlement written again after a failover
        # (plume.calls.recovery) must not reuse the one its failed transaction expired.
        return draft_out(await DraftRepository(session, call.principal.scope).add(row()))

    stored = await call.settle(add, answer=answer, output=document.text)
    assert stored is not None
    return stored
