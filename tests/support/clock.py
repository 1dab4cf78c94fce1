"""A clock the tests move by hand (period boundaries, expiries)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

# A Friday afternoon: 15:00 UTC, 16:00 in Paris.
FRIDAY_AFTERNOON = datetime(2026, 11, 27, 15, 0, 0, tzinfo=UTC)


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.current = now

    def now(self) -> datetime:
        return self.current

    def advance(self, **delta: float) -> None:
        self.current += timedelta(**delta)
