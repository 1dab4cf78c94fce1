"""Quotas in French, for the people who hit them: amounts, periods, levels, reset times."""

from __future__ import annotations

import math
from datetime import datetime
from decimal import Decimal

from plume.credentials.auth import Level
from plume.dates import PARIS
from plume.french import french_day
from plume.models import OrganizationKind

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
