"""Forgetting a draft's texts: on request (its author or a tenant admin, `DELETE
/v1/drafts/{id}`) and by retention (drafts older than the organisation's `retention_days`,
daily). What stays is the record: id, kind, dates, review, usage and the text's digest; what
goes is everything that holds the commune's words — the request, title, text, sections,
warnings, ACTES nature, review comment, job progress and part summaries, and the stored
answers of idempotent retries. The audit trail holds no text and is left as it is."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from plume.credentials.auth import Principal
from plume.credentials.service import ROLE_RANK
from plume.db import TenantScope
from plume.drafting.repository import DraftRepository
from plume.errors import Conflict, Forbidden, NotFound
from plume.models import ApiKeyRole, Draft, DraftStatus


@dataclass(frozen=True, slots=True)
class Erased:
    draft_id: uuid.UUID
    organization_id: uuid.UUID
    kind: str
    text_digest: str
    replays: int


def may_erase(principal: Principal, draft: Draft) -> bool:
    """Its author (the key, OAuth2 client or signed-in agent that asked for it), or an
    administrator of its organisation."""
    if ROLE_RANK[principal.role] >= ROLE_RANK[ApiKeyRole.TENANT_ADMIN]:
        return True
    return any(
        mine is not None and mine == theirs
        for mine, theirs in (
            (principal.key_id, draft.created_by_key_id),
            (principal.client_id, draft.created_by_client_id),
            (principal.agent_id, draft.created_by_agent_id),
        )
    )


def forget(draft: Draft, now: datetime) -> str:
    """Empty what holds the draft's words; returns the digest of the text it had."""
    text_digest = draft.text_digest or hashlib.sha256(draft.text.encode()).hexdigest()
    draft.request = {}
    draft.title = None
    draft.text = ""
    draft.sections = None
    draft.warnings = []
    draft.acte_nature = None
    draft.review_comment = None
    draft.progress = None
    draft.part_summaries = None
    draft.status = DraftStatus.ERASED
    draft.erased_at = now
    draft.text_digest = text_digest
    return text_digest


async def erase_one(repository: DraftRepository, draft: Draft, now: datetime) -> Erased:
    text_digest = forget(draft, now)
    replays = await repository.forget_replays(draft.organization_id, draft.id)
    await repository.save(draft)
    return Erased(draft.id, draft.organization_id, draft.kind, text_digest, replays)


async def erase_for(session: AsyncSession, principal: Principal, draft_id: uuid.UUID) -> Erased:
    """Erase a draft of the caller's organisation, if the caller may."""
    repository = DraftRepository(session, principal.scope)
    draft = await repository.get(draft_id, for_update=True)
    if draft is None or draft.organization_id != principal.organization_id:
        raise NotFound("Aucun brouillon ne porte cet identifiant.")
    if not may_erase(principal, draft):
        raise Forbidden(
            "Seul l'auteur du brouillon ou un administrateur de l'organisation peut l'effacer."
        )
    if draft.status is DraftStatus.ERASED:
        raise Conflict("Ce brouillon a déjà été effacé.")
    if draft.status is DraftStatus.PROCESSING:
        raise Conflict(
            "Cette synthèse est en cours de rédaction : attendez qu'elle soit terminée (ou "
            "en échec) pour l'effacer."
        )
    return await erase_one(repository, draft, datetime.now(UTC))


async def erase_expired(
    session: AsyncSession,
    organization_id: uuid.UUID,
    before: datetime,
    now: datetime,
    limit: int,
) -> list[Erased]:
    """Erase up to `limit` drafts of one organisation created before `before` (a batch: the
    caller commits and comes back until fewer than `limit` are erased)."""
    repository = DraftRepository(session, TenantScope(frozenset([organization_id])))
    drafts = await repository.expired(organization_id, before, limit)
    return [await erase_one(repository, draft, now) for draft in drafts]
