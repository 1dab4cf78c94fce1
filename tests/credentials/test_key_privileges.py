"""The database's own guarantees behind the key routes (review finding M-2): under the
application role, in a tenant's transaction, no statement changes a key's role, expiry or
revocation, nor reads a key's hash; a key is revoked, within the scope, only through
`api_key_revoke`, and looked up only through `api_key_lookup`."""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from plume.credentials.secrets import KeyHasher
from plume.db import TenantScope, enter_tenant_context
from tests.credentials.helpers import key_row
from tests.support.factories import Factory
from tests.support.settings import TEST_SECRET

STATEMENTS = {
    "role": "UPDATE api_keys SET role = 'operator_admin' WHERE id = :id",
    "revoked_at": "UPDATE api_keys SET revoked_at = NULL WHERE id = :revoked",
    "expires_at": "UPDATE api_keys SET expires_at = NULL WHERE id = :id",
    "secret_hash (write)": "UPDATE api_keys SET secret_hash = repeat('0', 64) WHERE id = :id",
    "secret_hash (read)": "SELECT secret_hash FROM api_keys WHERE id = :id",
    "delete": "DELETE FROM api_keys WHERE id = :id",
}


@pytest.mark.parametrize("statement", list(STATEMENTS.values()), ids=list(STATEMENTS))
async def test_a_tenant_admins_transaction_cannot_change_a_keys_role_expiry_or_revocation(
    db: AsyncSession, factory: Factory, statement: str
) -> None:
    commune = await factory.commune()
    key = await factory.key(commune, "agent")
    revoked = await factory.key(commune, "agent")
    await db.execute(
        text("UPDATE api_keys SET revoked_at = now() WHERE id = :id"), {"id": revoked.id}
    )
    before = [await key_row(db, k) for k in (key.id, revoked.id)]

    await enter_tenant_context(db, TenantScope(frozenset({commune.id})))
    async with db.begin_nested() as savepoint:
        with pytest.raises(DBAPIError) as refused:
            await db.execute(text(statement), {"id": key.id, "revoked": revoked.id})
        await savepoint.rollback()
    assert isinstance(refused.value.orig, psycopg.errors.InsufficientPrivilege)
    assert "permission denied" in str(refused.value.orig)

    await db.execute(text("RESET ROLE"))
    assert [await key_row(db, k) for k in (key.id, revoked.id)] == before


async def test_revoking_goes_through_the_function_within_the_scope_only(
    db: AsyncSession, factory: Factory
) -> None:
    mine = await factory.commune()
    other = await factory.commune()
    my_key = await factory.key(mine, "agent")
    their_key = await factory.key(other, "agent")
    await enter_tenant_context(db, TenantScope(frozenset({mine.id})))
    revoke = text("SELECT api_key_revoke(CAST(:id AS uuid))")
    assert await db.scalar(revoke, {"id": their_key.id}) is None  # not found: out of scope
    revoked_at = await db.scalar(revoke, {"id": my_key.id})
    assert revoked_at is not None
    assert await db.scalar(revoke, {"id": my_key.id}) == revoked_at  # once, for good
    await db.execute(text("RESET ROLE"))
    assert (await key_row(db, my_key.id)).revoked_at == revoked_at
    assert (await key_row(db, their_key.id)).revoked_at is None


async def test_the_lookup_needs_no_scope_and_answers_only_the_key_whose_hash_is_given(
    db: AsyncSession, factory: Factory
) -> None:
    """The application role, with no scope at all (before authentication), finds a key
    only by its hash, and its chain with it; and with no scope it reads no key directly."""
    epci = await factory.epci()
    commune = await factory.commune(parent=epci)
    key = await factory.key(commune, "agent")
    hashed = KeyHasher.from_secret(TEST_SECRET).hash(key.secret)
    await db.execute(text("SET LOCAL ROLE plume_app"))
    assert await db.scalar(text("SELECT count(*) FROM api_keys")) == 0
    row = (
        await db.execute(
            text(
                "SELECT (api_key).id, (organization).id, (parent).id, (grandparent).kind"
                " FROM api_key_lookup(ARRAY[:hash], 'v') "
            ),
            {"hash": hashed},
        )
    ).one()
    assert [str(value) for value in row] == [key.id, str(commune.id), str(epci.id), "operator"]
    unknown = await db.execute(text("SELECT * FROM api_key_lookup(ARRAY[repeat('0', 64)], 'v')"))
    assert unknown.all() == []
