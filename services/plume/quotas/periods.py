"""The windows of quotas: minutes, and calendar days and months in Europe/Paris.

A day starts at local midnight and a month at local midnight on the 1st, whatever the
offset that day (daylight-saving changes included); minutes are the same everywhere. The
ledger's SQL functions compute the same windows with `date_trunc(…, 'Europe/Paris')`; a
test checks that both agree.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta
from typing import Literal

from plume.dates import PARIS

Period = Literal["minute", "day", "month"]


def window_start(period: str, now: datetime) -> datetime:
    """The start (UTC) of the period window that contains `now`."""
    if period == "minute":
        return now.astimezone(UTC).replace(second=0, microsecond=0)
    local = now.astimezone(PARIS)
    if period == "day":
        start = datetime(local.year, local.month, local.day, tzinfo=PARIS)
    elif period == "month":
        start = datetime(local.year, local.month, 1, tzinfo=PARIS)
    else:
        raise ValueError(f"unknown period {period!r}")
    return start.astimezone(UTC)


@functools.lru_cache(maxsize=64)
def window_end(period: str, start: datetime) -> datetime:
    """The start (UTC) of the window after the one starting at `start`."""
    if period == "minute":
        return start + timedelta(minutes=1)
    local = start.astimezone(PARIS)
    if period == "day":
        # Calendar arithmetic on the date, then midnight in Paris: 23 or 25 hours on DST days.
        following = (local + timedelta(days=1)).date()
        end = datetime(following.year, following.month, following.day, tzinfo=PARIS)
    elif period == "month":
        year, month = (local.year + 1, 1) if local.month == 12 else (local.year, local.month + 1)
        end = datetime(year, month, 1, tzinfo=PARIS)
    else:
        raise ValueError(f"unknown period {period!r}")
    return end.astimezone(UTC)


def windows(now: datetime) -> dict[str, datetime]:
    """The start of each period's window containing `now` (every request asks: the answer
    only changes with the minute)."""
    return dict(_windows_at(now.astimezone(UTC).replace(second=0, microsecond=0)))


@functools.lru_cache(maxsize=8)
def _windows_at(minute: datetime) -> tuple[tuple[str, datetime], ...]:
    return tuple((period, window_start(period, minute)) for period in ("minute", "day", "month"))
