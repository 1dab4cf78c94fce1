"""The usage hook: one row per provider-backed request, in its settlement transaction."""

from __future__ import annotations

import functools
import time
import uuid
from typing import Any

from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncSession

from plume.provider_calls import CallContext, CallHook, CallOutcome, deferred_ctes

# The usage record's columns (the audit hook writes the record with its entry, in one
# statement).
USAGE_COLUMNS = (
    "id",
    "organization_id",
    "api_key_id",
    "request_id",
    "kind",
    "model_group",
    "provider",
    "model",
    "outcome",
    "error_code",
    "prompt_tokens",
    "completion_tokens",
    "cost_eur",
    "latency_ms",
    "ttft_ms",
    "fallbacks",
    "energy_kwh",
    "gwp_kgco2eq",
    "charged",
)


# Background jobs whose key is unknown act with this placeholder id.
_NO_KEY = uuid.UUID(int=0)


def usage_row(context: CallContext, outcome: CallOutcome) -> dict[str, Any] | None:
    """The usage record's values for a settled request; None for a synthèse accepted as a
    job (the job records it when it settles)."""
    if outcome.outcome == "deferred":
        return None
    completion = outcome.completion
    consumed = outcome.consumed
    key_id = context.principal.key_id
    return {
        "id": uuid.uuid4(),
        "organization_id": context.principal.organization_id,
        "api_key_id": None if key_id == _NO_KEY else key_id,
        "request_id": context.request_id,
        "kind": context.kind,
        "model_group": context.route.group.name,
        "provider": completion.provider if completion else None,
        "model": completion.model if completion else None,
        "outcome": outcome.outcome,
        "error_code": outcome.error_code,
        "prompt_tokens": consumed.prompt_tokens,
        "completion_tokens": consumed.completion_tokens,
        "cost_eur": consumed.cost_eur,
        "latency_ms": round((time.perf_counter() - context.started) * 1000),
        "ttft_ms": (
            round(completion.ttft_s * 1000)
            if completion is not None and completion.ttft_s is not None
            else None
        ),
        "fallbacks": completion.fallbacks if completion else 0,
        "energy_kwh": consumed.energy_kwh,
        "gwp_kgco2eq": consumed.gwp_kgco2eq,
        "charged": outcome.charged,
    }


class UsageRecorder(CallHook):
    """The usage record alone (the audit hook writes it together with its entry), and the
    calls other hooks deferred to its statement."""

    async def after_call(
        self, session: AsyncSession, context: CallContext, outcome: CallOutcome
    ) -> None:
        row = usage_row(context, outcome)
        if row is None:
            return
        calls = context.take_deferred()
        parameters = {f"usage_{column}": row[column] for column in USAGE_COLUMNS}
        for call in calls:
            parameters.update(call.parameters)
        await session.execute(_insert_statement(tuple(call.sql for call in calls)), parameters)


@functools.cache
def _insert_statement(calls: tuple[str, ...]) -> TextClause:
    """Built from the constant column names and calls, never from input."""
    ctes, names = deferred_ctes(calls)
    columns = ", ".join(USAGE_COLUMNS)
    values = ", ".join(f":usage_{column}" for column in USAGE_COLUMNS)
    if not calls:
        return text(f"INSERT INTO usage_records ({columns}) VALUES ({values})")  # noqa: S608
    return text(
        f"WITH {', '.join(ctes)}"  # noqa: S608
        f" INSERT INTO usage_records ({columns}) SELECT {values} FROM {', '.join(names)}"
    )
