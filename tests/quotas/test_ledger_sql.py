"""The quota ledger's functions, called directly in SQL: their rules as specifications.

Each test arranges organisations and quotas as the connection's superuser, then acts as the
application does: in the test's transaction, under the role plume_app with a tenant scope
(plume.db.enter_tenant_context), it calls quota_reserve, quota_settle, quota_extend and
quota_release_expired (services/plume/quotas/sql/ has their source); it reads the ledger
back as the superuser. The chain is a commune, its EPCI and the operator.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, NamedTuple

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from plume.db import TenantScope, enter_tenant_context
from plume.models import Organization
from plume.quotas.repository import QUOTA_REFUSED, refusal_from
from tests.support.database import reset_tenant_context
from tests.support.factories import Factory

# A Friday afternoon, 16:00 in Paris, and the windows that contain it.
NOW = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)
MINUTE = NOW
DAY = datetime(2026, 11, 26, 23, 0, tzinfo=UTC)  # 27 November, midnight in Paris
MONTH = datetime(2026, 10, 31, 23, 0, tzinfo=UTC)  # 1 November, midnight in Paris
TTL = timedelta(minutes=15)

_RESERVE = text(
    "SELECT * FROM quota_reserve(CAST(:id AS uuid), CAST(:organization AS uuid),"
    " CAST(:now AS timestamptz), CAST(:tokens AS numeric), CAST(:cost AS numeric),"
    " CAST(:expires_at AS timestamptz))"
)
_SETTLE = text(
    "SELECT quota_settle(CAST(:id AS uuid), CAST(:requests AS numeric),"
    " CAST(:tokens AS numeric), CAST(:cost AS numeric), CAST(:organization AS uuid),"
    " CAST(:now AS timestamptz))"
)
_EXTEND = text("SELECT quota_extend(CAST(:id AS uuid), CAST(:expires_at AS timestamptz))")
_RELEASE_EXPIRED = text(
    "SELECT quota_release_expired(CAST(:now AS timestamptz), CAST(:batch AS integer))"
)


@dataclass(frozen=True)
class Chain:
    operator: Organization
    epci: Organization
    commune: Organization

    @property
    def levels(self) -> list[Organization]:
        return [self.commune, self.epci, self.operator]


@pytest.fixture
async def chain(factory: Factory) -> Chain:
    epci = await factory.epci()
    commune = await factory.commune(parent=epci)
    return Chain(await factory.operator(), epci, commune)


class Ledger:
    """The ledger's functions as the application calls them, and the ledger as it stands."""

    def __init__(self, db: AsyncSession, chain: Chain) -> None:
        self.db = db
        self.chain = chain

    # Arranging and reading, as the superuser.

    async def as_superuser(self) -> None:
        await reset_tenant_context(await self.db.connection())

    async def set_quota(
        self, organization: Organization, metric: str, period: str, limit: int | str
    ) -> None:
        await self.as_superuser()
        await self.db.execute(
            text(
                'INSERT INTO quotas (id, organization_id, metric, period, "limit")'
                " VALUES (gen_random_uuid(), :organization, :metric, :period, :limit)"
            ),
            {
                "organization": organization.id,
                "metric": metric,
                "period": period,
                "limit": Decimal(limit),
            },
        )

    async def row(self, organization: Organization) -> dict[str, Any] | None:
        """The organisation's ledger row."""
        await self.as_superuser()
        found = (
            await self.db.execute(
                text("SELECT * FROM quota_ledger WHERE organization_id = :id"),
                {"id": organization.id},
            )
        ).one_or_none()
        return None if found is None else dict(found._mapping)

    async def held(self, organization: Organization) -> tuple[Decimal, Decimal, Decimal]:
        row = await self.row(organization)
        assert row is not None
        return row["reserved_requests"], row["reserved_tokens"], row["reserved_cost_eur"]

    async def reservation(self, reservation_id: uuid.UUID) -> dict[str, Any] | None:
        await self.as_superuser()
        found = (
            await self.db.execute(
                text("SELECT * FROM quota_reservations WHERE id = :id"), {"id": reservation_id}
            )
        ).one_or_none()
        return None if found is None else dict(found._mapping)

    # Acting, as the application.

    async def as_commune(self, commune: Organization | None = None) -> None:
        """A request of the commune: its own scope, its ancestors' quotas visible."""
        commune = commune or self.chain.commune
        await enter_tenant_context(
            self.db,
            TenantScope(
                frozenset({commune.id}),
                ancestor_ids=frozenset({self.chain.epci.id, self.chain.operator.id}),
            ),
        )

    async def as_system(self) -> None:
        await enter_tenant_context(self.db, TenantScope.everything())

    async def reserve(
        self,
        *,
        reservation_id: uuid.UUID | None = None,
        organization: Organization | None = None,
        now: datetime = NOW,
        tokens: int = 0,
        cost: str = "0",
        expires_at: datetime | None = None,
    ) -> tuple[uuid.UUID, Answer | None]:
        """A reservation for a request of the commune (or of `organization`), in the scope
        the transaction has."""
        reservation_id = reservation_id or uuid.uuid4()
        answer = (
            await self.db.execute(
                _RESERVE,
                {
                    "id": reservation_id,
                    "organization": (organization or self.chain.commune).id,
                    "now": now,
                    "tokens": tokens,
                    "cost": Decimal(cost),
                    "expires_at": expires_at or now + TTL,
                },
            )
        ).one_or_none()
        return reservation_id, None if answer is None else Answer(*answer)

    async def settle(
        self,
        reservation_id: uuid.UUID,
        *,
        requests: int = 1,
        tokens: int = 0,
        cost: str = "0",
        organization: Organization | None = None,
        now: datetime | None = NOW,
    ) -> bool:
        settled = await self.db.scalar(
            _SETTLE,
            {
                "id": reservation_id,
                "requests": requests,
                "tokens": tokens,
                "cost": Decimal(cost),
                "organization": (organization or self.chain.commune).id,
                "now": now,
            },
        )
        return bool(settled)

    async def release(self, reservation_id: uuid.UUID) -> bool:
        """What plume.quotas.ledger.release sends: nothing used, no organisation, no time."""
        settled = await self.db.scalar(
            _SETTLE,
            {
                "id": reservation_id,
                "requests": 0,
                "tokens": 0,
                "cost": 0,
                "organization": None,
                "now": None,
            },
        )
        return bool(settled)

    async def extend(self, reservation_id: uuid.UUID, expires_at: datetime) -> None:
        await self.db.execute(_EXTEND, {"id": reservation_id, "expires_at": expires_at})

    async def release_expired(self, now: datetime, batch: int = 100) -> int:
        return int(await self.db.scalar(_RELEASE_EXPIRED, {"now": now, "batch": batch}))

    @asynccontextmanager
    async def rolled_back(self) -> AsyncIterator[None]:
        """A savepoint undone at the end: what the caller's rollback does."""
        async with self.db.begin_nested() as savepoint:
            yield
            await savepoint.rollback()


@pytest.fixture
def ledger(db: AsyncSession, chain: Chain) -> Ledger:
    return Ledger(db, chain)


@contextmanager
def refused_as_insufficient_privilege(message: str) -> Iterator[None]:
    with pytest.raises(DBAPIError) as refused:
        yield
    assert isinstance(refused.value.orig, psycopg.errors.InsufficientPrivilege)
    assert message in str(refused.value.orig)


class Answer(NamedTuple):
    """quota_reserve's row: a quota, its window, and the request against it."""

    organization_id: uuid.UUID
    metric: str
    period: str
    limit: Decimal
    window_start: datetime
    # What the request holds of this quota's metric.
    amount: Decimal
    # The window's use, and what requests in flight hold (this one included if accepted).
    used: Decimal
    reserved: Decimal
    accepted: bool


def refusal(
    level: Organization,
    quota: str,
    *,
    limit: int,
    window: datetime,
    amount: int,
    used: int,
    reserved: int,
) -> Answer:
    """The answer refusing a request: `quota` is "metric/period"."""
    metric, period = quota.split("/")
    return Answer(
        level.id,
        metric,
        period,
        Decimal(limit),
        window,
        Decimal(amount),
        Decimal(used),
        Decimal(reserved),
        accepted=False,
    )


def acceptance(
    level: Organization,
    quota: str,
    *,
    limit: int,
    window: datetime,
    amount: int,
    used: int,
    reserved: int,
) -> Answer:
    """The answer accepting a request: its tightest quota, `quota` being "metric/period"."""
    return refusal(
        level, quota, limit=limit, window=window, amount=amount, used=used, reserved=reserved
    )._replace(accepted=True)


async def test_a_request_that_fits_is_accepted_and_held_at_every_level_that_has_quotas(
    ledger: Ledger, chain: Chain
) -> None:
    await ledger.set_quota(chain.commune, "requests", "day", 10)
    await ledger.set_quota(chain.epci, "tokens", "day", 5000)
    await ledger.set_quota(chain.operator, "cost_eur", "month", 100)

    await ledger.as_commune()
    reservation_id, answer = await ledger.reserve(tokens=600, cost="1.5")

    assert answer is not None
    assert answer.accepted
    for level in chain.levels:
        assert await ledger.held(level) == (1, 600, Decimal("1.5"))
    reservation = await ledger.reservation(reservation_id)
    assert reservation is not None
    assert reservation["organization_id"] == chain.commune.id
    assert (reservation["tokens"], reservation["cost_eur"]) == (600, Decimal("1.5"))
    assert reservation["holds"] == sorted(level.id for level in chain.levels)
    assert reservation["expires_at"] == NOW + TTL


async def test_a_level_without_quotas_holds_nothing_and_no_quota_anywhere_answers_no_row(
    ledger: Ledger, chain: Chain
) -> None:
    await ledger.as_commune()
    reservation_id, answer = await ledger.reserve(tokens=600)
    assert answer is None
    assert await ledger.reservation(reservation_id) is None

    await ledger.set_quota(chain.epci, "tokens", "day", 5000)
    await ledger.as_commune()
    reservation_id, answer = await ledger.reserve(tokens=600)

    assert answer is not None
    assert answer.accepted
    reservation = await ledger.reservation(reservation_id)
    assert reservation is not None
    assert reservation["holds"] == [chain.epci.id]
    assert await ledger.row(chain.commune) is None
    assert await ledger.row(chain.operator) is None


async def test_a_request_that_would_go_over_one_quota_is_refused_whole_and_rolled_back(
    ledger: Ledger, chain: Chain
) -> None:
    await ledger.set_quota(chain.commune, "requests", "day", 10)
    await ledger.set_quota(chain.epci, "tokens", "day", 1000)

    async with ledger.rolled_back():
        await ledger.as_commune()
        reservation_id, answer = await ledger.reserve(tokens=1200)

        # The refusing quota, with what stood before this request.
        assert answer == refusal(
            chain.epci, "tokens/day", limit=1000, window=DAY, amount=1200, used=0, reserved=0
        )
        # The function has raised the holds of every level and recorded the reservation
        # all the same: refusing is the caller's rollback, of the whole reservation.
        assert await ledger.held(chain.commune) == (1, 1200, 0)
        assert await ledger.held(chain.epci) == (1, 1200, 0)
        assert await ledger.reservation(reservation_id) is not None

    assert await ledger.held(chain.commune) == (0, 0, 0)
    assert await ledger.held(chain.epci) == (0, 0, 0)
    assert await ledger.reservation(reservation_id) is None


async def test_quota_reserve_or_refuse_answers_an_acceptance_and_raises_a_refusal(
    ledger: Ledger, chain: Chain
) -> None:
    """The variant whose refusal is an error (a COMMIT pipelined after it then commits
    nothing): accepted, the same row as quota_reserve; refused, SQLSTATE PQ429 whose detail
    is the refusing quota's row — what quota_reserve would answer — and the transaction
    aborted."""
    await ledger.set_quota(chain.commune, "requests", "day", 1)
    await ledger.set_quota(chain.epci, "tokens", "day", 1000)
    statement = _RESERVE.text.replace("quota_reserve(", "quota_reserve_or_refuse(")
    parameters = {"organization": chain.commune.id, "now": NOW, "cost": 0, "expires_at": NOW + TTL}

    async with ledger.rolled_back():
        await ledger.as_commune()
        row = (
            await ledger.db.execute(
                text(statement), {**parameters, "id": uuid.uuid4(), "tokens": 600}
            )
        ).one()
        assert Answer(*row) == Answer(
            chain.commune.id,
            "requests",
            "day",
            Decimal(1),
            DAY,
            Decimal(1),
            Decimal(0),
            Decimal(1),
            True,
        )
        with pytest.raises(DBAPIError) as raised:
            await ledger.db.execute(
                text(statement), {**parameters, "id": uuid.uuid4(), "tokens": 500}
            )
    error = raised.value.orig
    assert isinstance(error, psycopg.Error)
    assert error.sqlstate == QUOTA_REFUSED
    assert error.diag.message_detail is not None
    refused = refusal_from(error.diag.message_detail)
    # The commune's requests and the EPCI's tokens both refuse: the answer is the quota
    # quota_reserve would name, with what stood before this request.
    assert Answer(*dataclasses.astuple(refused)) == refusal(
        chain.commune, "requests/day", limit=1, window=DAY, amount=1, used=0, reserved=1
    )
    assert await ledger.held(chain.commune) == (0, 0, 0)
    assert await ledger.held(chain.epci) == (0, 0, 0)


async def test_a_quota_counts_what_requests_in_flight_hold(
    ledger: Ledger, chain: Chain, factory: Factory
) -> None:
    """Two communes of an EPCI share its quota: the second request's hold counts for the
    third, before either is settled."""
    await ledger.set_quota(chain.epci, "requests", "minute", 2)
    other = await factory.commune(parent=chain.epci)

    await ledger.as_commune()
    _, first = await ledger.reserve()
    await ledger.as_commune(other)
    _, second = await ledger.reserve(organization=other)
    async with ledger.rolled_back():
        await ledger.as_commune()
        _, third = await ledger.reserve()
        assert third == refusal(
            chain.epci, "requests/minute", limit=2, window=MINUTE, amount=1, used=0, reserved=2
        )

    assert first is not None
    assert first.accepted
    assert first.reserved == 1
    assert second is not None
    assert second.accepted
    assert second.reserved == 2


async def test_of_several_refusing_quotas_the_answer_is_the_one_that_stays_shut_the_longest(
    ledger: Ledger, chain: Chain
) -> None:
    """A month's quota over a day's over a minute's, whatever the level."""
    await ledger.set_quota(chain.commune, "requests", "minute", 1)
    await ledger.set_quota(chain.epci, "requests", "day", 1)
    await ledger.set_quota(chain.operator, "requests", "month", 2)
    await ledger.as_commune()
    reservation_id, _ = await ledger.reserve()
    assert await ledger.settle(reservation_id)

    # The minute's and the day's quotas refuse; the month's would have room.
    async with ledger.rolled_back():
        await ledger.as_commune()
        _, answer = await ledger.reserve()
        assert answer == refusal(
            chain.epci, "requests/day", limit=1, window=DAY, amount=1, used=1, reserved=0
        )

    await ledger.as_superuser()
    await ledger.db.execute(
        text('UPDATE quotas SET "limit" = 1 WHERE organization_id = :id'),
        {"id": chain.operator.id},
    )
    async with ledger.rolled_back():
        await ledger.as_commune()
        _, answer = await ledger.reserve()
        assert answer == refusal(
            chain.operator, "requests/month", limit=1, window=MONTH, amount=1, used=1, reserved=0
        )


async def test_when_accepted_the_answer_is_the_tightest_quota(ledger: Ledger, chain: Chain) -> None:
    """The least fraction of its limit remaining once the request holds its amounts."""
    await ledger.set_quota(chain.commune, "requests", "day", 10)  # 9/10 left
    await ledger.set_quota(chain.epci, "tokens", "day", 1000)  # 400/1000 left
    await ledger.set_quota(chain.operator, "cost_eur", "month", 10)  # 8.5/10 left

    await ledger.as_commune()
    _, answer = await ledger.reserve(tokens=600, cost="1.5")

    assert answer == acceptance(
        chain.epci, "tokens/day", limit=1000, window=DAY, amount=600, used=0, reserved=600
    )


async def test_settling_replaces_the_hold_by_the_use_at_every_level(
    ledger: Ledger, chain: Chain
) -> None:
    await ledger.set_quota(chain.commune, "requests", "day", 10)
    await ledger.set_quota(chain.epci, "tokens", "day", 5000)
    await ledger.set_quota(chain.operator, "cost_eur", "month", 100)
    await ledger.as_commune()
    reservation_id, _ = await ledger.reserve(tokens=600, cost="1.5")

    await ledger.as_commune()
    assert await ledger.settle(reservation_id, tokens=450, cost="0.8", now=NOW)

    for level in chain.levels:
        row = await ledger.row(level)
        assert row is not None
        assert (row["minute_start"], row["day_start"], row["month_start"]) == (MINUTE, DAY, MONTH)
        for period in ("minute", "day", "month"):
            used = (row[f"{period}_requests"], row[f"{period}_tokens"], row[f"{period}_cost_eur"])
            assert used == (1, 450, Decimal("0.8")), (level.kind, period)
        assert await ledger.held(level) == (0, 0, 0)
    assert await ledger.reservation(reservation_id) is None

    # Settled once: the reservation is gone, a release finds nothing.
    await ledger.as_commune()
    assert not await ledger.release(reservation_id)


async def test_a_release_gives_back_the_holds_and_charges_nothing(
    ledger: Ledger, chain: Chain
) -> None:
    await ledger.set_quota(chain.epci, "tokens", "day", 5000)
    await ledger.as_commune()
    reservation_id, _ = await ledger.reserve(tokens=600)
    before = await ledger.row(chain.epci)

    await ledger.as_commune()
    assert await ledger.release(reservation_id)

    after = await ledger.row(chain.epci)
    assert before is not None
    assert after is not None
    assert await ledger.held(chain.epci) == (0, 0, 0)
    unchanged = {key: value for key, value in before.items() if not key.startswith("reserved_")}
    assert {key: after[key] for key in unchanged} == unchanged
    assert await ledger.reservation(reservation_id) is None

    await ledger.as_commune()
    assert not await ledger.release(uuid.uuid4())


async def test_settling_a_reservation_the_sweep_released_still_charges_the_chain(
    ledger: Ledger, chain: Chain
) -> None:
    await ledger.set_quota(chain.commune, "requests", "day", 10)
    await ledger.set_quota(chain.epci, "tokens", "day", 5000)
    await ledger.as_commune()
    reservation_id, _ = await ledger.reserve(tokens=600, expires_at=NOW + timedelta(minutes=1))

    await ledger.as_system()
    assert await ledger.release_expired(NOW + timedelta(minutes=2)) == 1
    assert await ledger.reservation(reservation_id) is None
    assert await ledger.held(chain.commune) == (0, 0, 0)

    # The request ends after all, charged: it has happened.
    later = NOW + timedelta(minutes=3)
    await ledger.as_commune()
    assert not await ledger.settle(reservation_id, tokens=450, cost="0.8", now=later)

    for level in (chain.commune, chain.epci):
        row = await ledger.row(level)
        assert row is not None
        assert row["minute_start"] == MINUTE + timedelta(minutes=3)
        assert (row["day_requests"], row["day_tokens"], row["day_cost_eur"]) == (
            1,
            450,
            Decimal("0.8"),
        )
    # The operator has no quota: it has no ledger row to charge.
    assert await ledger.row(chain.operator) is None


async def test_quota_extend_moves_the_expiry_and_the_sweep_waits_for_it(
    ledger: Ledger, chain: Chain
) -> None:
    await ledger.set_quota(chain.epci, "tokens", "day", 5000)
    await ledger.as_commune()
    reservation_id, _ = await ledger.reserve(tokens=600)

    await ledger.as_commune()
    await ledger.extend(reservation_id, NOW + timedelta(hours=6))

    reservation = await ledger.reservation(reservation_id)
    assert reservation is not None
    assert reservation["expires_at"] == NOW + timedelta(hours=6)
    await ledger.as_system()
    assert await ledger.release_expired(NOW + timedelta(hours=1)) == 0
    assert await ledger.release_expired(NOW + timedelta(hours=7)) == 1
    assert await ledger.held(chain.epci) == (0, 0, 0)


async def test_the_sweep_releases_only_expired_reservations_the_oldest_first_in_batches(
    ledger: Ledger, chain: Chain
) -> None:
    await ledger.set_quota(chain.epci, "tokens", "day", 5000)
    expiries = [NOW + timedelta(minutes=minutes) for minutes in (3, 1, 2, 30)]
    ids = []
    for expires_at in expiries:
        await ledger.as_commune()
        reservation_id, _ = await ledger.reserve(tokens=100, expires_at=expires_at)
        ids.append(reservation_id)

    await ledger.as_system()
    assert await ledger.release_expired(NOW + timedelta(minutes=10), batch=2) == 2
    remaining = [await ledger.reservation(reservation_id) is not None for reservation_id in ids]
    assert remaining == [True, False, False, True]
    await ledger.as_system()
    assert await ledger.release_expired(NOW + timedelta(minutes=10), batch=2) == 1
    assert await ledger.held(chain.epci) == (1, 100, 0)


async def test_quota_release_expired_refuses_a_scope_other_than_the_systems(
    ledger: Ledger, chain: Chain
) -> None:
    await ledger.as_commune()
    async with ledger.rolled_back():
        with refused_as_insufficient_privilege("only the system sweeps reservations"):
            await ledger.release_expired(NOW)


async def test_a_function_called_for_an_organisation_outside_the_scope_is_refused(
    ledger: Ledger, chain: Chain, factory: Factory
) -> None:
    await ledger.set_quota(chain.epci, "tokens", "day", 5000)
    other = await factory.commune(parent=chain.epci)
    await ledger.as_commune(other)
    theirs, _ = await ledger.reserve(organization=other, tokens=100)

    await ledger.as_commune()
    async with ledger.rolled_back():
        with refused_as_insufficient_privilege("outside this transaction's scope"):
            await ledger.reserve(organization=other)
    # A charge for another organisation, whose reservation this scope cannot see.
    async with ledger.rolled_back():
        with refused_as_insufficient_privilege("outside this transaction's scope"):
            await ledger.settle(theirs, tokens=100, organization=other)
    # Releasing or extending another organisation's reservation finds nothing.
    assert not await ledger.release(theirs)
    await ledger.extend(theirs, NOW + timedelta(hours=6))
    reservation = await ledger.reservation(theirs)
    assert reservation is not None
    assert reservation["expires_at"] == NOW + TTL


async def test_the_windows_roll_when_p_now_passes_into_a_new_day_in_paris(
    ledger: Ledger, chain: Chain
) -> None:
    await ledger.set_quota(chain.commune, "requests", "day", 1)
    before_midnight = datetime(2026, 11, 27, 22, 59, 30, tzinfo=UTC)  # 23:59:30 in Paris
    after_midnight = datetime(2026, 11, 27, 23, 0, 15, tzinfo=UTC)  # 00:00:15 on the 28th
    await ledger.as_commune()
    reservation_id, _ = await ledger.reserve(now=before_midnight)
    await ledger.as_commune()
    assert await ledger.settle(reservation_id, now=before_midnight)

    async with ledger.rolled_back():
        await ledger.as_commune()
        _, answer = await ledger.reserve(now=before_midnight + timedelta(seconds=29))
        assert answer == refusal(
            chain.commune, "requests/day", limit=1, window=DAY, amount=1, used=1, reserved=0
        )

    await ledger.as_commune()
    reservation_id, answer = await ledger.reserve(now=after_midnight)
    new_day = datetime(2026, 11, 27, 23, 0, tzinfo=UTC)
    assert answer == acceptance(
        chain.commune, "requests/day", limit=1, window=new_day, amount=1, used=0, reserved=1
    )
    await ledger.as_commune()
    assert await ledger.settle(reservation_id, now=after_midnight)
    row = await ledger.row(chain.commune)
    assert row is not None
    assert (row["day_start"], row["day_requests"]) == (new_day, 1)
