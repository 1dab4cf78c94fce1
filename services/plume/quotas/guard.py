"""The quota hook: reserve before the provider call, settle after it.

Reservation and settlement each run inside the short transactions that surround the call
(see plume.provider_calls); nothing is locked while the provider works.
"""

from __future__ import annotations

import math
import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from plume.credentials.auth import Level, Principal
from plume.db import DriverStatement
from plume.drafting.document import french_day
from plume.errors import QuotaExceeded, RateLimited
from plume.models import OrganizationKind
from plume.provider_calls import CallContext, CallHook, CallOutcome, RateLimitStatus
from plume.quotas import ledger
from plume.quotas.periods import PARIS, Clock, window_end
from plume.routing.router import ProviderRouter

_PERIOD_LABELS = {"minute": "par minute", "day": "par jour", "month": "par mois"}


def amount_label(metric: str, amount: Decimal) -> str:
    if metric == "cost_eur":
        return f"{amount.quantize(Decimal('0.01'))} €".replace(".", ",")
    count = int(amount)
    noun = {"requests": "requête", "tokens": "jeton"}[metric]
    return f"{count:,} {noun}{'s' if count > 1 else ''}".replace(",", "\u202f")


def quota_label(metric: str, period: str, limit: Decimal) -> str:
    return f"{amount_label(metric, limit)} {_PERIOD_LABELS[period]}"


def level_label(level: Level | None) -> str:
    if level is None:
        return "votre organisation"
    if level.kind is OrganizationKind.COMMUNE:
        return f"la commune « {level.name} »"
    if level.kind is OrganizationKind.EPCI:
        return f"l'EPCI « {level.name} » (partagé par ses communes)"
    return f"l'opérateur « {level.name} » (partagé par toutes les organisations)"


def reset_label(period: str, resets_at: datetime, now: datetime) -> str:
    if period == "minute":
        seconds = max(1, math.ceil((resets_at - now).total_seconds()))
        return f"dans {seconds} seconde{'s' if seconds > 1 else ''}"
    local = resets_at.astimezone(PARIS)
    return f"le {french_day(local.date())} à {local:%H:%M} (heure de Paris)"


class QuotaGuard(CallHook):
    """A CallHook: every drafting or chat request counts against its organisation's quotas
    and those of each ancestor; it is refused if one of them would go over."""

    def __init__(
        self,
        router: ProviderRouter,
        clock: Clock,
        reservation_ttl_s: int,
        job_reservation_ttl_s: int,
    ) -> None:
        self.router = router
        self.clock = clock
        self.reservation_ttl = timedelta(seconds=reservation_ttl_s)
        self.job_reservation_ttl = timedelta(seconds=job_reservation_ttl_s)

    def opening(self, context: CallContext) -> DriverStatement:
        estimate = context.estimate
        if estimate is None:
            raise RuntimeError("a provider-backed request must carry its estimate")
        now = self.clock.now()
        # Held only if phase 1 commits: a refusal, a replay or an error rolls it back, and
        # then no settlement follows.
        context.reservation_id = uuid.uuid4()
        outputs = estimate.output_tokens * estimate.calls
        return ledger.reserve(
            reservation_id=context.reservation_id,
            organization_id=context.principal.organization_id,
            now=now,
            tokens=estimate.tokens,
            cost=self.router.worst_cost(context.route, estimate.prompt_tokens, outputs),
            # A synthèse in parts may run for a long time, streamed or as a job.
            expires_at=now
            + (self.job_reservation_ttl if estimate.calls > 1 else self.reservation_ttl),
        )

    async def before_call(
        self, session: AsyncSession, context: CallContext, opened: list[tuple[Any, ...]] | None
    ) -> None:
        answer = ledger.reserved(opened or [])
        if answer is None:
            context.reservation_id = None  # no quota applies at any level
            return
        now = self.clock.now()
        if not answer.accepted:
            raise self._refusal(context.principal, answer, now)
        reset = window_end(answer.period, answer.window_start)
        context.rate_limit = RateLimitStatus(
            limit=answer.limit,
            remaining=answer.remaining,
            reset_seconds=max(0, math.ceil((reset - now).total_seconds())),
        )

    async def after_call(
        self, session: AsyncSession, context: CallContext, outcome: CallOutcome
    ) -> None:
        if context.reservation_id is None:
            return
        if outcome.outcome == "deferred":
            # A synthèse job settles the reservation when it finishes.
            await ledger.extend(
                session, context.reservation_id, self.clock.now() + self.job_reservation_ttl
            )
            return
        # Evaluated by the statement that writes the usage record: no round trip of its own.
        if not outcome.charged:
            context.deferred.append(ledger.settle_call(context.reservation_id))
            return
        consumed = outcome.consumed
        context.deferred.append(
            ledger.settle_call(
                context.reservation_id,
                organization_id=context.principal.organization_id,
                # Where a reservation swept or lost is charged all the same.
                now=self.clock.now(),
                requests=1,
                tokens=consumed.prompt_tokens + consumed.completion_tokens,
                cost=consumed.cost_eur,
            )
        )

    def _refusal(
        self, principal: Principal, worst: ledger.Reserved, now: datetime
    ) -> QuotaExceeded:
        """`worst`: of the quotas that refused, the one that stays shut the longest."""
        levels = {level.id: level for level in principal.chain}
        resets_at = window_end(worst.period, worst.window_start)
        retry_after = math.ceil((resets_at - now).total_seconds())
        quota = quota_label(worst.metric, worst.period, worst.limit)
        detail = f"Quota atteint : {quota} pour {level_label(levels.get(worst.organization_id))}. "
        if worst.amount > worst.limit:
            detail += (
                f"Cette demande ({amount_label(worst.metric, worst.amount)} au plus) dépasse "
                "à elle seule ce quota : réduisez-la (max_output_tokens, texte plus court) "
                "ou demandez un quota plus large. "
            )
        detail += f"Il sera rétabli {reset_label(worst.period, resets_at, now)}."
        # Only per-minute quotas refused when the one shut the longest is one of them.
        error = (
            RateLimited(detail, retry_after)
            if worst.period == "minute"
            else QuotaExceeded(detail, retry_after)
        )
        error.headers.update(
            RateLimitStatus(
                limit=worst.limit, remaining=Decimal(0), reset_seconds=max(retry_after, 1)
            ).headers()
        )
        return error
