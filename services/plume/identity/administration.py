"""Inviting and changing an agent, with the audit entry each leaves: the one way the API
(/v1/organization/agents) and the workspace's administration pages do it."""

from __future__ import annotations

from typing import Any

from plume.audit.trail import AuditTrail
from plume.credentials.auth import Principal
from plume.identity.schemas import AgentInvite, AgentOut, AgentPatch
from plume.identity.service import AgentService, agent_out
from plume.models import Agent, Organization


def agent_details(agent: AgentOut) -> dict[str, Any]:
    """What the trail says of an agent."""
    return {"email": agent.email, "role": agent.role, "title": agent.title, "status": agent.status}


async def invite_recorded(
    service: AgentService,
    organization: Organization,
    payload: AgentInvite,
    *,
    caller: Principal,
    audit: AuditTrail,
) -> AgentOut:
    agent = await service.invite(
        organization, payload, by_key=caller.key_id, by_agent=caller.agent_id
    )
    out = agent_out(agent)
    await audit.record(
        organization.id, "agent.invite", target=("agent", str(agent.id)), details=agent_details(out)
    )
    return out


async def update_recorded(
    service: AgentService, agent: Agent, payload: AgentPatch, *, audit: AuditTrail
) -> AgentOut:
    """The change, and the sessions it ended (a suspension ends them at once)."""
    agent, revoked = await service.update(agent, payload)
    out = agent_out(agent)
    await audit.record(
        agent.organization_id,
        "agent.update",
        target=("agent", str(agent.id)),
        details={
            **agent_details(out),
            "changed": sorted(payload.model_dump(exclude_none=True)),
            "sessions_revoked": revoked,
        },
    )
    return out
