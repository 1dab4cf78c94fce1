"""The usage hook: one row per provider-backed request, in its settlement transaction."""

from __future__ import annotations

import time
import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from plume.models import UsageRecord
from plume.provider_calls import CallContext, CallOutcome

# Background jobs whose key is unknown act with this placeholder id.
_NO_KEY = uuid.UUID(int=0)


class UsageRecorder:
    async def before_call(self, session: AsyncSession, context: CallContext) -> None:
        return None

    async def after_call(
        self, session: AsyncSession, context: CallContext, outcome: CallOutcome
    ) -> None:
        if outcome.outcome == "deferred":
            return  # the job records the request when it settles
        completion = outcome.completion
        consumed = outcome.consumed
        key_id = context.principal.key_id
        session.add(
            UsageRecord(
                organization_id=context.principal.organization_id,
                api_key_id=None if key_id == _NO_KEY else key_id,
                request_id=context.request_id,
                kind=context.kind,
                model_group=context.route.group.name,
                provider=completion.provider if completion else None,
                model=completion.model if completion else None,
                outcome=outcome.outcome,
                error_code=outcome.error_code,
                prompt_tokens=consumed.prompt_tokens,
                completion_tokens=consumed.completion_tokens,
                cost_eur=consumed.cost_eur,
                latency_ms=round((time.perf_counter() - context.started) * 1000),
                fallbacks=completion.fallbacks if completion else 0,
                ttft_ms=(
                    round(completion.ttft_s * 1000)
                    if completion is not None and completion.ttft_s is not None
                    else None
                ),
                energy_kwh=consumed.energy_kwh,
                gwp_kgco2eq=consumed.gwp_kgco2eq,
                charged=outcome.outcome != "failure",
            )
        )
