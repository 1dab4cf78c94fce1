"""Time as Plume counts it: the clock, and calendar days in Europe/Paris.

Reports (`from`, `to`), quota windows and the audit purge all speak of Paris calendar days,
whatever the offset that day (daylight-saving changes included).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

from plume.errors import invalid_field

PARIS = ZoneInfo("Europe/Paris")
# The dates a report may ask for: far enough for any real use, and clear of the calendar's
# ends, where a day's bounds cannot be computed (9999-12-31 has no next day).
FIRST_DAY = date(2000, 1, 1)
LAST_DAY = date(2100, 12, 31)
# The same bounds, for the OpenAPI description of a report date (`YYYY-MM-DD`).
REPORT_DAY_PATTERN = r"^(20[0-9]{2}|2100)-[0-9]{2}-[0-9]{2}$"


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


def paris_day_start(day: date) -> datetime:
    """Midnight in Paris at the start of `day`, in UTC."""
    return datetime(day.year, day.month, day.day, tzinfo=PARIS).astimezone(UTC)


def date_range(start: date | None, end: date | None, now: datetime) -> tuple[date, date]:
    """Inclusive calendar dates in Paris (`from`, `to` of reports); by default the current
    month (so far). A date outside 2000-01-01..2100-12-31 is a 422 naming its field, as is
    an end before the start (`to`)."""
    for field, day in (("from", start), ("to", end)):
        if day is not None and not FIRST_DAY <= day <= LAST_DAY:
            raise invalid_field(
                field,
                f"la date doit être comprise entre le {FIRST_DAY:%d/%m/%Y} et le "
                f"{LAST_DAY:%d/%m/%Y}",
            )
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
