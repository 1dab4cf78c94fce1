"""Writing entries: what an action records, who acted, and the dependency endpoints record
their actions with (in the request's transaction). The settlement of a provider call writes
its entry in the same statement as the call's usage record (plume.calls.settlement); a
refused request's entry is plume.audit.refusals'.

Never put prompt or output text, or a secret, in an entry's details: hashes and sizes only.
"""

from __future__ import annotations

import ipaddress
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from plume.audit.chain import canonical, format_time
from plume.audit.repository import AuditRepository, NewEntry

__all__ = ["Actor", "Audit", "AuditTrail", "NewEntry", "append", "entry", "record"]
from plume.credentials.auth import Principal
from plume.web.transaction import DBSession


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acted: a key, an OAuth2 client or a signed-in agent, and its role; or `system`
    (the command line, background jobs)."""

    key_id: uuid.UUID | None
    role: str
    request_id: str | None = None
    client_address: str | None = None
    client_id: uuid.UUID | None = None
    agent_id: uuid.UUID | None = None

    @classmethod
    def system(cls) -> Actor:
        return cls(key_id=None, role="system")


def client_network(address: str | None) -> str | None:
    """An address cut to its network (IPv4 /24, IPv6 /48): what the hashed body keeps for
    as long as the entry, while the full address is forgotten after a while."""
    if not address:
        return None
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None  # not an address (a test client's name): nothing personal to keep
    prefix = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


def entry(
    *,
    organization_id: uuid.UUID,
    action: str,
    actor: Actor,
    outcome: str = "success",
    target: tuple[str, str] | None = None,
    details: dict[str, Any] | None = None,
    occurred_at: datetime | None = None,
) -> NewEntry:
    occurred_at = occurred_at or datetime.now(UTC)
    who: dict[str, Any] = {"key_id": str(actor.key_id) if actor.key_id else None}
    # Entries written before clients and agents existed hash the same: added only when set.
    if actor.client_id:
        who["client_id"] = str(actor.client_id)
    if actor.agent_id:
        who["agent_id"] = str(actor.agent_id)
    fields = {
        "organization_id": str(organization_id),
        "action": action,
        "occurred_at": format_time(occurred_at),
        "actor": {**who, "role": actor.role},
        "request_id": actor.request_id,
        "client_address": client_network(actor.client_address),
        "outcome": outcome,
        "target": {"type": target[0], "id": target[1]} if target else None,
        "details": details or {},
    }
    return NewEntry(
        organization_id=organization_id,
        occurred_at=occurred_at,
        action=action,
        actor_key_id=actor.key_id,
        actor_role=actor.role,
        body=canonical(fields),
        client_address=actor.client_address,
    )


async def append(session: AsyncSession, new: NewEntry) -> tuple[int, str]:
    """Append `new` to its organisation's chain, in the session's transaction; returns its
    sequence number and hash."""
    return await AuditRepository(session).append(new)


async def record(
    session: AsyncSession,
    *,
    organization_id: uuid.UUID,
    action: str,
    actor: Actor,
    outcome: str = "success",
    target: tuple[str, str] | None = None,
    details: dict[str, Any] | None = None,
    occurred_at: datetime | None = None,
) -> tuple[int, str]:
    """Append one entry to the organisation's chain, in the session's transaction; returns
    its sequence number and hash."""
    return await append(
        session,
        entry(
            organization_id=organization_id,
            action=action,
            actor=actor,
            outcome=outcome,
            target=target,
            details=details,
            occurred_at=occurred_at,
        ),
    )


def client_address(request: Request) -> str | None:
    return request.client.host if request.client else None


def actor_of(request: Request, principal: Principal) -> Actor:
    return Actor(
        key_id=principal.key_id,
        role=principal.role.value,
        request_id=getattr(request.state, "request_id", None),
        client_address=client_address(request),
        client_id=principal.client_id,
        agent_id=principal.agent_id,
    )


def key_details(name: str, role: str, prefix: str) -> dict[str, Any]:
    """What the trail says of an API key: never its secret."""
    return {"name": name, "role": role, "prefix": prefix}


def client_details(name: str, role: str, client_id: str) -> dict[str, Any]:
    """What the trail says of an OAuth2 client: never its secret."""
    return {"name": name, "role": role, "client_id": client_id}


class AuditTrail:
    """What an endpoint records its action with, in its own transaction."""

    def __init__(self, session: AsyncSession, actor: Actor) -> None:
        self.session = session
        self.actor = actor

    async def record(
        self,
        organization_id: uuid.UUID,
        action: str,
        target: tuple[str, str] | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        await record(
            self.session,
            organization_id=organization_id,
            action=action,
            actor=self.actor,
            target=target,
            details=details,
        )


def audit_trail(request: Request, session: DBSession) -> AuditTrail:
    principal: Principal | None = getattr(request.state, "principal", None)
    actor = actor_of(request, principal) if principal is not None else Actor.system()
    return AuditTrail(session, actor)


Audit = Annotated[AuditTrail, Depends(audit_trail)]
