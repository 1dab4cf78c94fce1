"""The database's own guarantees behind the quota routes: under the application role, the
ledger moves only through its functions, only a parent or the operator writes quotas, and
row-level security scopes the quota tables."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import psycopg
import pytest
from httpx import AsyncClient
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from plume.db import TenantScope, enter_tenant_context
from plume.models import QuotaCounter, QuotaReservation
from tests.support.factories import Factory
from tests.support.quotas import set_quotas


def _refused(error: DBAPIError) -> bool:
    return isinstance(error.orig, psycopg.errors.InsufficientPrivilege)


async def test_the_ledger_moves_only_through_its_functions_for_the_callers_own_requests(
    client: AsyncClient, factory: Factory, db: AsyncSession
) -> None:
    """Under the application role, a commune's transaction cannot write the ledger or the
    reservations itself, cannot reserve for another commune, and cannot settle another
    commune's reservation; reserving for itself reaches its EPCI's ledger too."""
    operator = await factory.operator_key()
    epci = await factory.epci()
    mine = await factory.commune(parent=epci)
    other = await factory.commune(parent=epci)
    for organization in (epci, mine, other):
        await set_quotas(
            client, operator, organization, [{"metric": "requests", "period": "day", "limit": 9}]
        )
    operator_id = (await factory.operator()).id
    now = datetime.now(UTC)
    reserve = text("SELECT accepted FROM quota_reserve(:id, :organization, :now, 10, 0, :now)")

    # Another commune's request holds a reservation (the system's scope, for the set-up).
    await enter_tenant_context(db, TenantScope.everything())
    theirs = uuid.uuid4()
    assert await db.scalar(reserve, {"id": theirs, "organization": other.id, "now": now})

    await enter_tenant_context(
        db, TenantScope(frozenset({mine.id}), ancestor_ids=frozenset({epci.id, operator_id}))
    )
    for statement in (
        "UPDATE quota_ledger SET reserved_requests = 0",
        "DELETE FROM quota_reservations",
        "INSERT INTO quota_ledger (organization_id, minute_start, day_start, month_start)"
        " VALUES (gen_random_uuid(), now(), now(), now())",
    ):
        async with db.begin_nested() as savepoint:
            with pytest.raises(DBAPIError) as denied:
                await db.execute(text(statement))
            await savepoint.rollback()
        assert _refused(denied.value), statement

    async with db.begin_nested() as savepoint:
        with pytest.raises(DBAPIError) as outside:
            await db.execute(reserve, {"id": uuid.uuid4(), "organization": other.id, "now": now})
        await savepoint.rollback()
    assert _refused(outside.value)
    assert "outside this transaction's scope" in str(outside.value.orig)

    # Settling (releasing) the other commune's reservation finds nothing it may touch.
    released = await db.scalar(
        text("SELECT quota_settle(:id, 0, 0, 0, NULL, NULL)"), {"id": theirs}
    )
    assert released is False

    assert await db.scalar(reserve, {"id": uuid.uuid4(), "organization": mine.id, "now": now})
    held = {
        organization_id: (used, reserved)
        for organization_id, used, reserved in (
            await db.execute(
                select(QuotaCounter.organization_id, QuotaCounter.used, QuotaCounter.reserved)
            )
        ).all()
    }
    assert held == {mine.id: (0, 1), epci.id: (0, 2)}  # the EPCI also holds the other's

    await db.execute(text("RESET ROLE"))
    reservations = await db.scalar(
        select(func.count()).select_from(QuotaReservation).where(QuotaReservation.id == theirs)
    )
    assert reservations == 1


async def test_only_an_organisations_parent_or_the_operator_may_write_its_quotas(
    client: AsyncClient, factory: Factory, db: AsyncSession
) -> None:
    """The database's own guarantee behind the routes: a commune's admin cannot raise its
    own limits, nor an EPCI's its own; an EPCI's transaction may set its communes' (within
    its own: next test)."""
    operator = await factory.operator_key()
    epci = await factory.epci()
    mine = await factory.commune(parent=epci)
    for organization in (epci, mine):
        await set_quotas(
            client, operator, organization, [{"metric": "requests", "period": "day", "limit": 9}]
        )
    raise_limit = text('UPDATE quotas SET "limit" = 1000 WHERE organization_id = :organization')

    await enter_tenant_context(db, TenantScope(frozenset({mine.id})))
    assert (await db.execute(raise_limit, {"organization": mine.id})).rowcount == 0  # type: ignore[attr-defined]
    async with db.begin_nested() as savepoint:
        with pytest.raises(DBAPIError) as denied:
            await db.execute(
                text(
                    'INSERT INTO quotas (id, organization_id, metric, period, "limit")'
                    " VALUES (gen_random_uuid(), :organization, 'tokens', 'day', 1)"
                ),
                {"organization": mine.id},
            )
        await savepoint.rollback()
    assert _refused(denied.value)

    await enter_tenant_context(db, TenantScope(frozenset({epci.id, mine.id})))
    assert (await db.execute(raise_limit, {"organization": epci.id})).rowcount == 0  # type: ignore[attr-defined]
    within = text('UPDATE quotas SET "limit" = 5 WHERE organization_id = :organization')
    assert (await db.execute(within, {"organization": mine.id})).rowcount == 1  # type: ignore[attr-defined]


async def test_quota_tables_are_scoped_by_row_level_security(
    client: AsyncClient, factory: Factory, db: AsyncSession
) -> None:
    """Under the application role, a commune sees its own and its ancestors' quotas, and
    no other commune's."""
    operator = await factory.operator_key()
    epci = await factory.epci()
    mine = await factory.commune(parent=epci)
    other = await factory.commune(parent=epci)
    for organization in (epci, mine, other):
        await set_quotas(
            client, operator, organization, [{"metric": "requests", "period": "day", "limit": 9}]
        )
    operator_id = (await factory.operator()).id
    await db.execute(text("SET LOCAL ROLE plume_app"))
    await db.execute(
        text(
            "SELECT set_config('plume.all_organizations', 'off', true),"
            " set_config('plume.organizations', :mine, true),"
            " set_config('plume.ancestors', :ancestors, true)"
        ),
        {"mine": str(mine.id), "ancestors": f"{epci.id},{operator_id}"},
    )
    visible = set((await db.execute(text("SELECT organization_id FROM quotas"))).scalars().all())
    assert visible == {mine.id, epci.id}
    updated = await db.execute(
        text('UPDATE quotas SET "limit" = 1000 WHERE organization_id = :epci'), {"epci": epci.id}
    )
    assert updated.rowcount == 0  # type: ignore[attr-defined]
    await db.execute(text("RESET ROLE"))
    limit = await db.scalar(
        select(text('"limit"')).select_from(text("quotas")).where(text("organization_id = :e")),
        {"e": epci.id},
    )
    assert Decimal(limit) == 9


async def _refusal(db: AsyncSession, statement: str, **parameters: object) -> BaseException:
    """The error PostgreSQL answers `statement` with, in a savepoint rolled back."""
    async with db.begin_nested() as savepoint:
        with pytest.raises(DBAPIError) as refused:
            await db.execute(text(statement), parameters)
        await savepoint.rollback()
    assert refused.value.orig is not None
    return refused.value.orig


async def test_an_epci_cannot_hand_its_communes_more_than_it_has(
    client: AsyncClient, factory: Factory, db: AsyncSession
) -> None:
    """The ceiling of an EPCI's split, held by PostgreSQL itself (the service checks it
    first, to name the field): under the EPCI admin's scope, a commune's limit goes up only
    as far as what the EPCI has left, on a quota the EPCI has; the operator sets anything."""
    operator = await factory.operator_key()
    epci = await factory.epci()
    mine = await factory.commune(parent=epci)
    other = await factory.commune(parent=epci)
    day = {"metric": "requests", "period": "day"}
    await set_quotas(client, operator, epci, [{**day, "limit": 9}])
    await set_quotas(client, operator, other, [{**day, "limit": 4}])
    await set_quotas(
        client,
        operator,
        mine,
        [{**day, "limit": 3}, {"metric": "tokens", "period": "month", "limit": 100}],
    )
    set_limit = (
        'UPDATE quotas SET "limit" = :limit'
        " WHERE organization_id = :organization AND metric = 'requests'"
    )

    await enter_tenant_context(db, TenantScope(frozenset({epci.id, mine.id, other.id})))
    # 4 given to the other commune: 5 fits in 9, 6 does not.
    over = await _refusal(db, set_limit, limit=6, organization=mine.id)
    assert isinstance(over, psycopg.errors.CheckViolation)
    assert "would exceed their parent's" in str(over)
    updated = await db.execute(text(set_limit), {"limit": 5, "organization": mine.id})
    assert updated.rowcount == 1  # type: ignore[attr-defined]
    # A quota the EPCI does not have is not its to hand out, nor to take away.
    invented = await _refusal(
        db,
        'INSERT INTO quotas (id, organization_id, metric, period, "limit")'
        " VALUES (gen_random_uuid(), :organization, 'cost_eur', 'day', 1)",
        organization=mine.id,
    )
    assert isinstance(invented, psycopg.errors.InsufficientPrivilege)
    removed = await _refusal(
        db,
        "DELETE FROM quotas WHERE organization_id = :organization AND metric = 'tokens'",
        organization=mine.id,
    )
    assert isinstance(removed, psycopg.errors.InsufficientPrivilege)

    # The system's scope (the operator) is not held to it.
    await enter_tenant_context(db, TenantScope.everything())
    assert (
        await db.execute(text(set_limit), {"limit": 1000, "organization": mine.id})
    ).rowcount == 1  # type: ignore[attr-defined]


async def test_the_ledger_never_counts_a_negative_use(
    client: AsyncClient, factory: Factory, db: AsyncSession
) -> None:
    """A settlement or a reservation of a negative amount is refused by the functions, and
    the ledger itself refuses a negative use, whoever writes it."""
    operator = await factory.operator_key()
    epci = await factory.epci()
    mine = await factory.commune(parent=epci)
    await set_quotas(client, operator, epci, [{"metric": "tokens", "period": "day", "limit": 1000}])
    now = datetime.now(UTC)
    await enter_tenant_context(db, TenantScope(frozenset({mine.id})))
    for statement in (
        "SELECT quota_settle(gen_random_uuid(), -1, -1000000000, -1000000, :organization, :now)",
        "SELECT quota_settle(gen_random_uuid(), 1, -5, 0, :organization, :now)",
        "SELECT * FROM quota_reserve(gen_random_uuid(), :organization, :now, -10, 0, :now)",
        "SELECT * FROM quota_reserve(gen_random_uuid(), :organization, :now, 10, -1, :now)",
    ):
        refused = await _refusal(db, statement, organization=mine.id, now=now)
        assert isinstance(refused, psycopg.errors.InvalidParameterValue), statement

    await db.execute(text("RESET ROLE"))  # the owner's own write
    negative = await _refusal(
        db, "UPDATE quota_ledger SET day_tokens = -1 WHERE organization_id = :epci", epci=epci.id
    )
    assert isinstance(negative, psycopg.errors.CheckViolation)
