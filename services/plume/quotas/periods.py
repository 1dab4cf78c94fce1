"""Calendar periods in Europe/Paris, and the clock that tells the time.

A day starts at local midnight and a month at local midnight on the 1st, whatever the
offset that day (daylight-saving changes included); minutes are the same everywhere.
"""

from __future__ import annotations

import functools
from datetime import UTC, date, datetime, timedelta
from typing import Literal, Protocol
from zoneinfo import ZoneInfo

from plume.errors import invalid_field

PARIS = ZoneInfo("Europe/Paris")

Period = Literal["minute", "day", "month"]


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


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


def paris_day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=PARIS).astimezone(UTC)


def date_range(start: date | None, end: date | None, now: datetime) -> tuple[date, date]:
    """Inclusive calendar dates in Paris (`from`, `to` of reports); by default the current
    month (so far). An end before the start is a 422 naming `to`."""
    if start is not None and end is not None and end < start:
        raise invalid_field("to", "la date de fin précède la date de début")
    today = now.astimezone(PARIS).date()
    last = end or (today if start is None else max(today, start))
    # Without `from`: the month of `to` (the current month by default).
    first = start or last.replace(day=1)
    return first, last


def utc_bounds(first: date, last: date) -> tuple[datetime, datetime]:
    """[start of `first`, start of the day after `last`) in UTC."""
    return paris_day_start(first), paris_day_start(last + timedelta(days=1))
