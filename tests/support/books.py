"""What the runs under load (failover, rolling restart) check once the load has stopped: what
the clients saw, and the books on the database — no quota overspent, the ledger equal to
the charged usage records, every request answered 2xx recorded, none charged twice."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import httpx
import psycopg


@dataclass
class Tally:
    """What the clients saw."""

    statuses: Counter[int] = field(default_factory=Counter)
    # The request ids of the 2xx answers, per commune.
    answered: dict[str, set[str]] = field(default_factory=dict)
    unexpected: list[str] = field(default_factory=list)
    # The 503 answers' bodies by request id, per commune.
    unavailable: dict[str, dict[str, str]] = field(default_factory=dict)
    transport_errors: list[str] = field(default_factory=list)

    def successes(self) -> int:
        return sum(n for status, n in self.statuses.items() if 200 <= status < 300)


def is_error_shape(answer: httpx.Response, *, draft: bool) -> bool:
    """Plume's errors are problem+json, except the OpenAI-compatible route's, which have
    OpenAI's shape (docs/api.md)."""
    if draft:
        return bool(answer.headers.get("content-type", "").startswith("application/problem+json"))
    error: object = answer.json().get("error")
    return isinstance(error, dict) and bool(error.get("code"))


@dataclass(frozen=True)
class Records:
    """One commune's usage records: outcome and charge by request id."""

    outcomes: dict[str, tuple[str, bool]]

    def charged(self, request_id: str) -> bool:
        return self.outcomes.get(request_id, ("", False))[1]


def check_the_books(
    admin_url: str, communes: Sequence[tuple[str, int]], tally: Tally
) -> dict[str, Records]:
    """On the database at `admin_url` (a superuser's): for each (commune id, its day limit of
    requests), no quota overspent, the ledger's use equal to the charged usage records, no
    request recorded twice, every request answered 2xx recorded. The records, per commune."""
    books: dict[str, Records] = {}
    with psycopg.connect(admin_url, autocommit=True) as admin:
        for commune_id, limit in communes:
            rows = admin.execute(
                "SELECT request_id, outcome, charged FROM usage_records WHERE organization_id = %s",
                (commune_id,),
            ).fetchall()
            ledger = admin.execute(
                "SELECT day_requests, reserved_requests FROM quota_ledger"
                " WHERE organization_id = %s",
                (commune_id,),
            ).fetchone()
            assert ledger is not None
            charged = sum(1 for _, _, c in rows if c)
            print(
                f"  commune {commune_id}: limit {limit}, usage records {len(rows)},"
                f" charged {charged}, ledger day_requests {int(ledger[0])}"
                f" (still reserved {int(ledger[1])})"
            )
            assert charged <= limit, f"{commune_id}: {charged} charged, limit {limit}"
            assert ledger[0] == charged, f"{commune_id}: ledger {ledger[0]} != {charged}"
            twice = [r for r, n in Counter(r for r, _, _ in rows).items() if n > 1]
            assert not twice, f"{commune_id}: requests recorded twice: {twice[:3]}"
            records = Records({r: (o, c) for r, o, c in rows})
            lost = tally.answered.get(commune_id, set()) - set(records.outcomes)
            assert not lost, f"{len(lost)} answered 2xx without a usage record: {sorted(lost)[:3]}"
            books[commune_id] = records
    return books
