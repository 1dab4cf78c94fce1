"""One calendar: the quota windows PostgreSQL computes are the ones Python computes.

The ledger's functions find the windows of a request's time in SQL (quota_reserve.sql and
quota_settle.sql declare them: `date_trunc('minute', p_now)`, and the day and the month in
Europe/Paris); plume.quotas.periods finds them in Python for the counters' view, the
`RateLimit-*` headers and the time a refusal tells to wait. Both must draw the same
boundaries, daylight-saving changes included (a day of 23 or 25 hours), or a request would
be counted in one window and reported in another.

Each check sends a batch of instants in one query and compares, for each instant, the
windows of the functions' own expressions with window_start, and the next window's start
with window_end.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from plume.quotas.periods import PARIS, window_end, window_start, windows

SQL = Path(__file__).resolve().parents[2] / "services" / "plume" / "quotas" / "sql"
PERIODS = ("minute", "day", "month")
MICROSECOND = timedelta(microseconds=1)

# The local calendar's next window after a window's start: the start's wall-clock time in
# Paris, plus one period of the calendar, read back in Paris. Not `start + interval '1 day'`
# on a timestamptz, which adds 24 hours in the session's time zone: on the day of 25 hours
# (end of October), that lands within the same day.
_NEXT = {
    "minute": "{start} + interval '1 minute'",
    "day": "(({start} AT TIME ZONE 'Europe/Paris') + interval '1 day') AT TIME ZONE 'Europe/Paris'",
    "month": (
        "(({start} AT TIME ZONE 'Europe/Paris') + interval '1 month') AT TIME ZONE 'Europe/Paris'"
    ),
}


def declared_windows(source: str) -> dict[str, str]:
    """The expressions with which a ledger function declares its windows of p_now."""
    text = (SQL / source).read_text()
    found = dict(re.findall(r"\bw_(minute|day|month) CONSTANT timestamptz := (.+);", text))
    assert set(found) == set(PERIODS), f"{source} declares the windows {sorted(found)}"
    return found


WINDOWS = declared_windows("quota_reserve.sql")


def test_reserving_and_settling_use_the_same_windows() -> None:
    assert declared_windows("quota_settle.sql") == WINDOWS
    assert WINDOWS == {
        "minute": "date_trunc('minute', p_now)",
        "day": "date_trunc('day', p_now, 'Europe/Paris')",
        "month": "date_trunc('month', p_now, 'Europe/Paris')",
    }


def _query() -> str:
    """For each instant t: the three windows (the functions' expressions), and for each
    window its next window's start, and the window of the instant just before it."""
    columns = []
    for period in PERIODS:
        start = f"({WINDOWS[period].replace('p_now', 'i.t')})"
        following = _NEXT[period].format(start=start)
        columns += [
            start,
            following,
            WINDOWS[period].replace("p_now", f"({following})"),
            WINDOWS[period].replace("p_now", f"({following}) - interval '1 microsecond'"),
        ]
    return (
        f"SELECT i.t, {', '.join(columns)}"  # noqa: S608 (the functions' own expressions)
        " FROM unnest(%s::timestamptz[]) WITH ORDINALITY AS i(t, n) ORDER BY i.n"
    )


QUERY = _query()


@pytest.fixture(params=["UTC", "Europe/Paris"])
def connection(
    database_url: str, request: pytest.FixtureRequest
) -> Iterator[psycopg.Connection[tuple[datetime, ...]]]:
    """The test database, whatever the session's time zone (the server's setting)."""
    url = database_url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("SELECT set_config('TimeZone', %s, false)", (request.param,))
        yield connection  # type: ignore[misc]


def assert_same_calendar(
    connection: psycopg.Connection[tuple[datetime, ...]], instants: list[datetime]
) -> None:
    rows = connection.execute(QUERY, (instants,)).fetchall()
    assert len(rows) == len(instants)
    disagreements = []
    for instant, row in zip(instants, rows, strict=True):
        # In UTC: psycopg answers in the session's time zone, and Python never finds a time
        # of the hour that Paris lives twice (end of October) equal to a time in another
        # zone (PEP 495), whatever the instants.
        assert row[0].astimezone(UTC) == instant
        computed = [value.astimezone(UTC) for value in row[1:]]
        python_windows = windows(instant)
        for index, period in enumerate(PERIODS):
            start, following, following_window, before_following = computed[4 * index :][:4]
            expected = window_start(period, instant)
            end = window_end(period, expected)
            checks = {
                "SQL's window = Python's window_start": start == expected,
                "Python's windows() = window_start": python_windows[period] == expected,
                "Python's window_end = SQL's next window": end == following,
                "the next window is a window of its own": following_window == following,
                "the instant before the next window is in this one": before_following == start,
            }
            disagreements += [
                f"{instant.astimezone(UTC).isoformat()} {period}: {name}"
                f" (SQL {start.astimezone(UTC).isoformat()} -> "
                f"{following.astimezone(UTC).isoformat()}, Python "
                f"{expected.isoformat()} -> {end.isoformat()})"
                for name, agreed in checks.items()
                if not agreed
            ]
    assert not disagreements, "\n".join(disagreements[:20])


def around(instant: datetime, *, seconds: bool = True) -> list[datetime]:
    """An instant, a microsecond either side, and (with seconds) a second and a minute."""
    deltas = [MICROSECOND]
    if seconds:
        deltas += [timedelta(seconds=1), timedelta(seconds=59), timedelta(minutes=1)]
    return [instant] + [instant + sign * delta for delta in deltas for sign in (-1, 1)]


def paris_midnight(year: int, month: int, day: int) -> datetime:
    return datetime(year, month, day, tzinfo=PARIS).astimezone(UTC)


# Daylight-saving changes in Paris: at 01:00 UTC, clocks go from 02:00 to 03:00 in March
# (a day of 23 hours) and from 03:00 back to 02:00 in October (a day of 25 hours).
DST_CHANGES = [
    datetime(2026, 3, 29, 1, tzinfo=UTC),
    datetime(2026, 10, 25, 1, tzinfo=UTC),
    datetime(2027, 3, 28, 1, tzinfo=UTC),
    datetime(2027, 10, 31, 1, tzinfo=UTC),
]


def test_the_days_of_a_daylight_saving_change_last_23_and_25_hours() -> None:
    """What the calendar checks below take for granted (Python's side of it)."""
    for change in DST_CHANGES:
        start = window_start("day", change)
        hours = (window_end("day", start) - start) / timedelta(hours=1)
        assert hours == (23 if change.month == 3 else 25), change
        assert start == paris_midnight(change.year, change.month, change.day)


def test_around_daylight_saving_changes(
    connection: psycopg.Connection[tuple[datetime, ...]],
) -> None:
    instants = []
    for change in DST_CHANGES:
        # The minutes before and after the change, and the change itself.
        instants += around(change)
        instants += [change + timedelta(minutes=minutes) for minutes in range(-3, 4)]
        instants += [change + timedelta(minutes=30), change - timedelta(minutes=30)]
        # The local midnights that open and close the day of the change, and the day after.
        for days in (-1, 0, 1, 2):
            local = change.date() + timedelta(days=days)
            instants += around(paris_midnight(local.year, local.month, local.day))
        # The hour of the day that does not exist, or happens twice, in local time.
        instants += [change + timedelta(minutes=minutes) for minutes in (-61, -59, 59, 61)]
    assert_same_calendar(connection, instants)


def test_around_month_ends_leap_days_and_year_ends(
    connection: psycopg.Connection[tuple[datetime, ...]],
) -> None:
    instants = []
    for year in range(2026, 2031):
        for month in range(1, 13):
            # The local midnight that opens the month (and closes the one before).
            instants += around(paris_midnight(year, month, 1))
            # Midnight UTC on the 1st: an hour or two into the month in Paris.
            instants += around(datetime(year, month, 1, tzinfo=UTC), seconds=False)
    # February 2028 has 29 days.
    for day in (28, 29):
        instants += around(paris_midnight(2028, 2, day))
    instants += around(paris_midnight(2028, 3, 1))
    instants += [datetime(2028, 2, 29, 12, tzinfo=UTC), datetime(2027, 2, 28, 23, tzinfo=UTC)]
    # The year's end: midnight in Paris is 23:00 UTC on 31 December.
    for year in range(2026, 2031):
        instants += around(datetime(year, 12, 31, 23, tzinfo=UTC))
        instants += around(datetime(year + 1, 1, 1, tzinfo=UTC))
    assert_same_calendar(connection, instants)


def test_at_random_instants_from_2026_to_2030(
    connection: psycopg.Connection[tuple[datetime, ...]],
) -> None:
    generator = random.Random(20261206)
    first = datetime(2026, 1, 1, tzinfo=UTC)
    span = int((datetime(2031, 1, 1, tzinfo=UTC) - first) / MICROSECOND)
    instants = [first + generator.randrange(span) * MICROSECOND for _ in range(5000)]
    assert_same_calendar(connection, instants)
