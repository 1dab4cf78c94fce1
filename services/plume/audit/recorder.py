"""Writing entries: from endpoints (in the request's transaction), from the provider-call
settlement (a hook), and for refused requests (a transaction of their own, since the
refused request's own rolls back)."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

import structlog
from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from plume.audit import chain
from plume.credentials.auth import Principal
from plume.db import enter_tenant_context
from plume.provider_calls import CallContext, CallHook, CallOutcome, DeferredCall
from plume.transaction import DBSession
from plume.usage.recorder import usage_row

logger = structlog.get_logger("plume.audit")

CHAT_KIND = "chat"


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acted: a key and its role, or `system` (the command line, background jobs)."""

    key_id: uuid.UUID | None
    role: str
    request_id: str | None = None
    client_address: str | None = None

    @classmethod
    def system(cls) -> Actor:
        return cls(key_id=None, role="system")


def client_address(request: Request) -> str | None:
    return request.client.host if request.client else None


def actor_of(request: Request, principal: Principal) -> Actor:
    return Actor(
        key_id=principal.key_id,
        role=principal.role.value,
        request_id=getattr(request.state, "request_id", None),
        client_address=client_address(request),
    )


def key_details(name: str, role: str, prefix: str) -> dict[str, Any]:
    """What the trail says of an API key: never its secret."""
    return {"name": name, "role": role, "prefix": prefix}


def digest(data: bytes | str) -> dict[str, Any]:
    raw = data.encode() if isinstance(data, str) else data
    return {"sha256": hashlib.sha256(raw).hexdigest(), "bytes": len(raw)}


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
    usage: dict[str, Any] | None = None,
    calls: Sequence[DeferredCall] = (),
) -> tuple[int, str]:
    """Append one entry to the organisation's chain, in the session's transaction (with
    `usage`, that usage record is inserted by the same statement, which evaluates `calls`).

    Never put prompt or output text, or a secret, in `details`: hashes and sizes only.
    """
    occurred_at = occurred_at or datetime.now(UTC)
    fields = {
        "organization_id": str(organization_id),
        "action": action,
        "occurred_at": chain.format_time(occurred_at),
        "actor": {
            "key_id": str(actor.key_id) if actor.key_id else None,
            "role": actor.role,
        },
        "request_id": actor.request_id,
        "client_address": actor.client_address,
        "outcome": outcome,
        "target": {"type": target[0], "id": target[1]} if target else None,
        "details": details or {},
    }
    return await chain.append(
        session,
        organization_id=organization_id,
        occurred_at=occurred_at,
        action=action,
        actor_key_id=actor.key_id,
        actor_role=actor.role,
        body=chain.canonical(fields),
        usage=usage,
        calls=calls,
    )


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


class AuditHook(CallHook):
    """A CallHook: `draft.create` or `chat.completion`, in the settlement transaction,
    written by one statement together with the request's usage record (it replaces
    UsageRecorder, so that the audit trail costs no extra round trip)."""

    async def after_call(
        self, session: AsyncSession, context: CallContext, outcome: CallOutcome
    ) -> None:
        completion = outcome.completion
        consumed = outcome.consumed
        output = context.output_digest
        if output is None and completion is not None:
            output = digest(completion.text)
        details: dict[str, Any] = {
            "kind": context.kind,
            "model_group": context.route.group.name,
            "provider": completion.provider if completion else None,
            "model": completion.model if completion else None,
            "prompt_tokens": consumed.prompt_tokens,
            "completion_tokens": consumed.completion_tokens,
            "cost_eur": str(consumed.cost_eur),
            "fallbacks": completion.fallbacks if completion else 0,
            "input": context.input_digest,
            "output": output,
            # The client's key is free text: its digest identifies it without keeping it.
            "idempotency_key": (
                digest(context.idempotency_key)["sha256"] if context.idempotency_key else None
            ),
            "error_code": outcome.error_code,
        }
        principal = context.principal
        await record(
            session,
            organization_id=principal.organization_id,
            action=CHAT_KIND + ".completion" if context.kind == CHAT_KIND else "draft.create",
            actor=Actor(
                key_id=None if principal.key_id.int == 0 else principal.key_id,
                role=principal.role.value if context.request_id else "system",
                request_id=context.request_id,
                client_address=context.client_address,
            ),
            outcome="accepted" if outcome.outcome == "deferred" else outcome.outcome,
            target=("draft", str(context.draft_id)) if context.draft_id else None,
            details=details,
            usage=usage_row(context, outcome),
            # Settling the quota ledger, in the same round trip.
            calls=context.take_deferred(),
        )


async def record_refusal(request: Request, status: int, code: str) -> None:
    """`access.denied` for an authenticated caller refused a resource. Best effort, in a
    transaction of its own: the refused request's transaction has rolled back."""
    principal: Principal | None = getattr(request.state, "principal", None)
    factory = getattr(request.app.state, "session_factory", None)
    if principal is None or factory is None:
        return
    route = request.scope.get("route")
    template = getattr(route, "path", None) or "unknown"
    try:
        async with factory() as session, session.begin():
            await enter_tenant_context(session, principal.scope)
            await record(
                session,
                organization_id=principal.organization_id,
                action="access.denied",
                actor=actor_of(request, principal),
                outcome="refused",
                target=("route", f"{request.method} {template}"),
                details={
                    "status": status,
                    "code": code,
                    "path_params": {k: str(v) for k, v in request.path_params.items()},
                },
            )
    except Exception:
        logger.exception("audit_refusal_not_recorded", code=code)
