"""Decisions about agents: who may sign in (an invitation, the SIRET, the statuses), the
sessions they open, and what a tenant admin may change."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from plume.config import Settings
from plume.db import TenantScope, enter_tenant_context
from plume.errors import Conflict, NotFound
from plume.identity.oidc import ProviderIdentity
from plume.identity.repository import AgentRepository, Candidate
from plume.identity.schemas import AgentInvite, AgentOut, AgentPatch
from plume.identity.sessions import new_session_token, token_hash
from plume.models import (
    Agent,
    AgentRole,
    AgentSession,
    AgentStatus,
    Organization,
    OrganizationStatus,
)
from plume.web.pagination import PageRequest

_USER_AGENT_LENGTH = 300


def agent_out(agent: Agent) -> AgentOut:
    return AgentOut(
        id=agent.id,
        organization_id=agent.organization_id,
        email=agent.email,
        given_name=agent.given_name,
        usual_name=agent.usual_name,
        title=agent.title,
        role=agent.role.value,
        status=agent.status.value,
        created_at=agent.created_at,
        last_login_at=agent.last_login_at,
    )


class SignInRefused(Exception):
    """Nobody may sign in with this identity; `reason` says why, in French, for the page."""

    def __init__(self, reason: str, *, organization: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.organization = organization


@dataclass(frozen=True, slots=True)
class SignedIn:
    """A new session: its cookie token (shown once), the agent and its organisation."""

    token: str
    agent: Agent
    session: AgentSession
    organization: Organization


def _choose(candidates: list[Candidate], siret: str | None) -> Candidate:
    """The agent to sign in: the bound one, or the oldest invitation whose organisation's
    SIRET, when both are known, is the provider's."""
    if not candidates:
        raise SignInRefused("Aucune invitation n'attend cette adresse électronique.")
    matching = [c for c in candidates if siret is None or c.chain[-1].siret in (None, siret)]
    if not matching:
        raise SignInRefused(
            "L'établissement (SIRET) avec lequel vous vous êtes connecté(e) n'est pas celui "
            "de l'organisation qui vous a invité(e).",
            organization=candidates[0].chain[-1].name,
        )
    return matching[0]


async def sign_in(
    session: AsyncSession,
    settings: Settings,
    identity: ProviderIdentity,
    *,
    user_agent: str | None,
) -> SignedIn:
    """Admit the person the provider identified, bind the invitation to them on the first
    sign-in, and open a session; SignInRefused otherwise (and no session)."""
    candidates = await AgentRepository(session, TenantScope.everything()).sign_in_candidates(
        identity.issuer, identity.subject, identity.email
    )
    chosen = _choose(candidates, identity.siret)
    agent, chain = chosen.agent, chosen.chain
    organization = chain[-1]
    if agent.status is AgentStatus.SUSPENDED:
        raise SignInRefused("Votre compte est suspendu.", organization=organization.name)
    if any(level.status is OrganizationStatus.SUSPENDED for level in chain):
        raise SignInRefused(
            "L'accès de votre organisation à Plume est suspendu.", organization=organization.name
        )
    # From here on, the agent's organisation's scope: binding and the session are the
    # application role's writes, under row-level security.
    scope = TenantScope(
        frozenset([organization.id]), ancestor_ids=frozenset(o.id for o in chain[:-1])
    )
    await enter_tenant_context(session, scope)
    repository = AgentRepository(session, scope)
    now = datetime.now(UTC)
    bound = await repository.bind(
        agent,
        {
            "issuer": identity.issuer,
            "subject": identity.subject,
            "given_name": identity.given_name or agent.given_name,
            "usual_name": identity.usual_name or agent.usual_name,
            "status": AgentStatus.ACTIVE,
            "last_login_at": now,
        },
    )
    token = new_session_token()
    record = await repository.open_session(
        AgentSession(
            organization_id=organization.id,
            agent_id=bound.id,
            token_hash=token_hash(settings, token),
            expires_at=now + timedelta(seconds=settings.session_max_s),
            acr=identity.acr,
            user_agent=(user_agent or "")[:_USER_AGENT_LENGTH] or None,
            id_token=identity.id_token,
        )
    )
    return SignedIn(token, bound, record, organization)


class AgentService:
    """A tenant admin's management of its organisation's agents (or an EPCI's communes')."""

    def __init__(self, session: AsyncSession, scope: TenantScope) -> None:
        self.repository = AgentRepository(session, scope)

    async def invite(
        self,
        organization: Organization,
        payload: AgentInvite,
        *,
        by_key: uuid.UUID | None,
        by_agent: uuid.UUID | None,
    ) -> Agent:
        existing = await self.repository.find_by_email(organization.id, payload.email)
        if existing is not None:
            raise Conflict(
                f"Un agent de cette organisation a déjà l'adresse {existing.email} "
                f"(état : {existing.status.value})."
            )
        return await self.repository.add(
            Agent(
                organization_id=organization.id,
                email=payload.email,
                role=AgentRole(payload.role),
                title=payload.title,
                status=AgentStatus.INVITED,
                invited_by_key_id=by_key,
                invited_by_agent_id=by_agent,
            )
        )

    async def list_page(self, organization_id: uuid.UUID, page: PageRequest) -> Sequence[Agent]:
        return await self.repository.list_page(organization_id, page)

    async def get(self, agent_id: uuid.UUID) -> Agent:
        agent = await self.repository.get(agent_id)
        if agent is None:
            raise NotFound("Aucun agent ne porte cet identifiant.")
        return agent

    async def update(self, agent: Agent, payload: AgentPatch) -> tuple[Agent, int]:
        """Apply a tenant admin's change; suspending revokes the agent's sessions at once.
        Returns the agent and how many sessions were revoked."""
        if payload.role is not None:
            agent.role = AgentRole(payload.role)
        if payload.title is not None:
            agent.title = payload.title
        revoked = 0
        if payload.status == "suspended":
            agent.status = AgentStatus.SUSPENDED
            revoked = await self.repository.revoke_sessions(agent.id)
        elif payload.status == "active" and agent.status is AgentStatus.SUSPENDED:
            # Never signed in: back to its invitation.
            agent.status = AgentStatus.ACTIVE if agent.subject else AgentStatus.INVITED
        return await self.repository.save(agent), revoked

    async def sessions(self, agent_id: uuid.UUID) -> Sequence[AgentSession]:
        return await self.repository.sessions_of(agent_id, datetime.now(UTC))

    async def revoke_session(self, agent_id: uuid.UUID, session_id: uuid.UUID) -> None:
        if await self.repository.revoke_sessions(agent_id, only=session_id) == 0:
            raise NotFound("Aucune session ouverte ne porte cet identifiant.")


async def purge_sessions(session: AsyncSession, before: datetime) -> int:
    """Delete, in every organisation (the system's scope), the sessions that ended before
    `before`: a session is a cookie's server side, not a record to keep."""
    return await AgentRepository(session, TenantScope.everything()).purge_sessions(before)
