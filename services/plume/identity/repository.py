"""All SQL about agents and their sessions.

The application role reads agents and sessions within its scope (never a session's token
hash: column privileges), invites agents, opens and revokes sessions. Before the caller is
known, a session is found by `agent_session_lookup` and the person signing in by
`agent_sign_in_lookup` (sources: `identity/sql/`), which read past the scope.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Uuid, column, delete, func, or_, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnClause, KeyedColumnElement

from plume.db import TenantScope
from plume.models import Agent, AgentSession, Organization
from plume.web.pagination import PageRequest, paginate

_SESSION_COLUMNS = [c for c in AgentSession.__table__.columns if c.name != "token_hash"]
_AGENT_COLUMNS = list(Agent.__table__.columns)
_ORGANIZATION_COLUMNS = list(Organization.__table__.columns)
_LEVELS = ("organization", "parent", "grandparent")


def _spread(composite: str, columns: Sequence[KeyedColumnElement[Any]]) -> list[str]:
    return [f"(l.{composite}).{c.name}" for c in columns]


def _typed(prefix: str, columns: Sequence[KeyedColumnElement[Any]]) -> list[ColumnClause[Any]]:
    return [column(f"{prefix}_{c.name}", c.type) for c in columns]


_LEVEL_NAMES = [name for level in _LEVELS for name in _spread(level, _ORGANIZATION_COLUMNS)]
_LEVEL_TYPES = [t for level in _LEVELS for t in _typed(level, _ORGANIZATION_COLUMNS)]

# Built once: this runs on every request that carries the session cookie.
_SESSION_LOOKUP = text(
    "SELECT "  # noqa: S608 (constants)
    + ", ".join(
        _spread("agent_session", _SESSION_COLUMNS)
        + _spread("agent", _AGENT_COLUMNS)
        + _LEVEL_NAMES
        + ["l.children"]
    )
    + " FROM agent_session_lookup(CAST(:hash AS text), CAST(:idle AS integer)) AS l"
).columns(
    *_typed("session", _SESSION_COLUMNS),
    *_typed("agent", _AGENT_COLUMNS),
    *_LEVEL_TYPES,
    column("children", ARRAY(Uuid())),
)
_SIGN_IN_LOOKUP = text(
    "SELECT "  # noqa: S608 (constants)
    + ", ".join(_spread("agent", _AGENT_COLUMNS) + _LEVEL_NAMES)
    + " FROM agent_sign_in_lookup(CAST(:issuer AS text), CAST(:subject AS text),"
    " CAST(:email AS text)) AS l"
).columns(*_typed("agent", _AGENT_COLUMNS), *_LEVEL_TYPES)


T = TypeVar("T")


def _entity(cls: type[T], columns: Sequence[KeyedColumnElement[Any]], values: Any) -> T:
    return cls(**dict(zip((c.key for c in columns), values, strict=True)))


def _chain(values: Sequence[Any]) -> list[Organization]:
    """The organisations spread in `values` (organisation, parent, grandparent), operator
    first."""
    levels: list[Organization] = []
    start = 0
    for _ in _LEVELS:
        end = start + len(_ORGANIZATION_COLUMNS)
        level = dict(zip((c.key for c in _ORGANIZATION_COLUMNS), values[start:end], strict=True))
        if level["id"] is not None:
            levels.append(Organization(**level))
        start = end
    return levels[::-1]


@dataclass(frozen=True, slots=True)
class FoundSession:
    """A session, its agent, the agent's organisation chain (operator first) and, for an
    EPCI's tenant admin, the EPCI's communes. Read-only copies, in no session."""

    session: AgentSession
    agent: Agent
    chain: list[Organization]
    children: list[uuid.UUID]


@dataclass(frozen=True, slots=True)
class Candidate:
    """Someone who may sign in: a bound agent or a pending invitation, with its chain."""

    agent: Agent
    chain: list[Organization]


class AgentRepository:
    def __init__(self, session: AsyncSession, scope: TenantScope) -> None:
        self.session = session
        self.scope = scope

    # -- before the caller is known ---------------------------------------------------------

    async def lookup_session(self, token_hash: str, idle_seconds: int) -> FoundSession | None:
        parameters = {"hash": token_hash, "idle": idle_seconds}
        row = (await self.session.execute(_SESSION_LOOKUP, parameters)).one_or_none()
        if row is None:
            return None
        values = tuple(row)
        n_session, n_agent = len(_SESSION_COLUMNS), len(_AGENT_COLUMNS)
        found = _entity(AgentSession, _SESSION_COLUMNS, values[:n_session])
        agent = _entity(Agent, _AGENT_COLUMNS, values[n_session : n_session + n_agent])
        chain = _chain(values[n_session + n_agent : -1])
        return FoundSession(found, agent, chain, list(values[-1] or []))

    async def sign_in_candidates(
        self, issuer: str, subject: str, email: str | None
    ) -> list[Candidate]:
        parameters = {"issuer": issuer, "subject": subject, "email": email}
        rows = (await self.session.execute(_SIGN_IN_LOOKUP, parameters)).all()
        n_agent = len(_AGENT_COLUMNS)
        return [
            Candidate(
                _entity(Agent, _AGENT_COLUMNS, tuple(row)[:n_agent]), _chain(tuple(row)[n_agent:])
            )
            for row in rows
        ]

    # -- agents, within the scope -------------------------------------------------------------

    async def get(self, agent_id: uuid.UUID) -> Agent | None:
        statement = select(Agent).where(
            Agent.id == agent_id, self.scope.clause(Agent.organization_id)
        )
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def find_by_email(self, organization_id: uuid.UUID, email: str) -> Agent | None:
        statement = select(Agent).where(
            Agent.organization_id == organization_id,
            func.lower(Agent.email) == email.lower(),
            self.scope.clause(Agent.organization_id),
        )
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def list_page(self, organization_id: uuid.UUID, page: PageRequest) -> Sequence[Agent]:
        statement = select(Agent).where(
            Agent.organization_id == organization_id, self.scope.clause(Agent.organization_id)
        )
        statement = paginate(statement, page, Agent.created_at, Agent.id)
        return (await self.session.execute(statement)).scalars().all()

    async def add(self, agent: Agent) -> Agent:
        self.session.add(agent)
        await self.session.flush()
        await self.session.refresh(agent, ["created_at", "updated_at"])
        return agent

    async def save(self, agent: Agent) -> Agent:
        await self.session.flush()
        await self.session.refresh(agent, ["updated_at"])
        return agent

    async def bind(self, agent: Agent, values: dict[str, Any]) -> Agent:
        """Write the sign-in's facts on an agent read by `sign_in_candidates` (a copy in no
        session): its identity, names, status and last login."""
        statement = (
            update(Agent)
            .where(Agent.id == agent.id, self.scope.clause(Agent.organization_id))
            .values(**values, updated_at=func.now())
            .returning(Agent)
        )
        return (await self.session.execute(statement)).scalar_one()

    # -- sessions, within the scope -----------------------------------------------------------

    async def open_session(self, agent_session: AgentSession) -> AgentSession:
        self.session.add(agent_session)
        await self.session.flush()
        await self.session.refresh(agent_session, ["created_at", "last_seen_at"])
        return agent_session

    async def get_session(self, session_id: uuid.UUID) -> AgentSession | None:
        statement = select(AgentSession).where(
            AgentSession.id == session_id, self.scope.clause(AgentSession.organization_id)
        )
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def sessions_of(self, agent_id: uuid.UUID, now: datetime) -> Sequence[AgentSession]:
        """The agent's sessions that are neither revoked nor past their absolute expiry,
        newest first."""
        statement = (
            select(AgentSession)
            .where(
                AgentSession.agent_id == agent_id,
                AgentSession.revoked_at.is_(None),
                AgentSession.expires_at > now,
                self.scope.clause(AgentSession.organization_id),
            )
            .order_by(AgentSession.created_at.desc(), AgentSession.id)
            .limit(100)
        )
        return (await self.session.execute(statement)).scalars().all()

    async def purge_sessions(self, before: datetime) -> int:
        """Delete the sessions of the scope that expired or were revoked before `before`."""
        result = await self.session.execute(
            delete(AgentSession).where(
                self.scope.clause(AgentSession.organization_id),
                or_(AgentSession.expires_at < before, AgentSession.revoked_at < before),
            )
        )
        return int(getattr(result, "rowcount", 0) or 0)

    async def revoke_sessions(self, agent_id: uuid.UUID, *, only: uuid.UUID | None = None) -> int:
        """Revoke the agent's sessions still open (or only one of them); how many were."""
        statement = (
            update(AgentSession)
            .where(
                AgentSession.agent_id == agent_id,
                AgentSession.revoked_at.is_(None),
                self.scope.clause(AgentSession.organization_id),
            )
            .values(revoked_at=func.now())
            .returning(AgentSession.id)
        )
        if only is not None:
            statement = statement.where(AgentSession.id == only)
        return len((await self.session.execute(statement)).all())
