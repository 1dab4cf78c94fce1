"""The tenant context as the database holds it: a session that entered one never runs a
statement outside it (even after its transaction committed, as a provider call's first
does), the service's connections cut a stuck statement or an idle transaction, and the
SECURITY DEFINER functions cannot be led astray through the search path."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from plume.app import create_app
from plume.calls.context import Estimate, RequestFacts
from plume.config import Settings
from plume.credentials.auth import authenticate_token
from plume.db import (
    APP_ROLE,
    TenantScope,
    create_engine,
    create_session_factory,
    enter_tenant_context,
    system_sessions,
)
from tests.support.factories import Factory, Key
from tests.support.settings import TEST_SECRET, make_settings

_CONTEXT = text(
    "SELECT current_user, current_setting('plume.organizations', true),"
    " current_setting('plume.all_organizations', true)"
)


async def _commune_and_agent(factory: async_sessionmaker[AsyncSession]) -> Key:
    """A commune and an agent key of its, committed."""
    async with factory() as session, session.begin():
        setup = Factory(session, TEST_SECRET)
        return await setup.key(await setup.commune(), "agent")


async def test_a_session_keeps_its_tenant_context_after_a_commit(
    committed_database_url: str,
) -> None:
    """Real commits (the test's own transaction would keep SET LOCAL values past them)."""
    engine = create_engine(committed_database_url, pool_size=1)
    try:
        factory = create_session_factory(engine)
        agent = await _commune_and_agent(factory)
        async with factory() as session:
            await enter_tenant_context(session, TenantScope(frozenset({agent.organization.id})))
            await session.commit()
            # A new transaction: without the kept scope it would run as the connection's own
            # role (here a superuser, who sees every tenant).
            row = (await session.execute(_CONTEXT)).one()
    finally:
        await engine.dispose()
    assert tuple(row) == (APP_ROLE, str(agent.organization.id), "off")


async def test_a_provider_calls_request_session_stays_scoped_once_its_reservation_committed(
    committed_database_url: str,
) -> None:
    """The request's session outlives the unit of work's first transaction (FastAPI closes
    it when the handler returns): whatever runs on it afterwards is in the caller's context."""
    engine = create_engine(committed_database_url, pool_size=2)
    try:
        app = create_app(make_settings(committed_database_url), engine=engine)
        agent = await _commune_and_agent(app.state.session_factory)
        async with app.state.session_factory() as session:
            principal = await authenticate_token(session, app.state.settings, agent.secret)
            route = app.state.provider_router.route(
                None, frozenset(principal.policy.allowed_hosting)
            )
            call = app.state.provider_calls.open(
                session,
                principal,
                RequestFacts(request_id="test-kept-scope"),
                kind="chat",
                route=route,
                estimate=Estimate(prompt_tokens=1, output_tokens=1),
            )
            async with call:
                assert not session.in_transaction()  # the reservation's transaction committed
                row = (await session.execute(_CONTEXT)).one()
                await call.fail(RuntimeError("the test stops here"))
    finally:
        await engine.dispose()
    assert tuple(row) == (APP_ROLE, str(agent.organization.id), "off")


async def test_system_sessions_begin_in_the_systems_scope_until_a_tenants_is_entered(
    committed_database_url: str,
) -> None:
    engine = create_engine(committed_database_url, pool_size=1)
    try:
        factory = create_session_factory(engine)
        agent = await _commune_and_agent(factory)
        async with system_sessions(factory)() as session:
            assert tuple((await session.execute(_CONTEXT)).one()) == (APP_ROLE, "", "on")
            scope = TenantScope(frozenset({agent.organization.id}))
            await enter_tenant_context(session, scope)
            await session.commit()
            assert tuple((await session.execute(_CONTEXT)).one()) == (
                APP_ROLE,
                str(agent.organization.id),
                "off",
            )
        # The factory it was made from is left as it was: no scope until one is entered.
        async with factory() as plain:
            assert (await plain.execute(_CONTEXT)).one()[0] != APP_ROLE
    finally:
        await engine.dispose()


async def test_entering_a_context_is_one_statement_whether_or_not_it_begins_the_transaction(
    committed_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A settlement's session enters its tenant's context as it begins: one statement, not
    the beginning's and then the same again; a transaction already begun in another scope
    switches with one more, and each time the database holds the scope entered."""
    sent: list[str] = []
    execute = psycopg.AsyncCursor.execute

    async def counted(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        if "set_config('role'" in str(query):
            sent.append("context")
        return await execute(self, query, *args, **kwargs)

    engine = create_engine(committed_database_url, pool_size=1)
    try:
        factory = create_session_factory(engine)
        agent = await _commune_and_agent(factory)
        scope = TenantScope(frozenset({agent.organization.id}))
        monkeypatch.setattr(psycopg.AsyncCursor, "execute", counted)
        async with factory() as session, session.begin():
            await enter_tenant_context(session, scope)
            assert sent == ["context"]
            row = tuple((await session.execute(_CONTEXT)).one())
            assert row == (APP_ROLE, str(agent.organization.id), "off")
            await enter_tenant_context(session, TenantScope.everything())
            assert sent == ["context", "context"]
            assert tuple((await session.execute(_CONTEXT)).one()) == (APP_ROLE, "", "on")
        async with system_sessions(factory)() as session, session.begin():
            await session.execute(_CONTEXT)  # begun in the system's scope
            sent.clear()
            await enter_tenant_context(session, scope)
            assert sent == ["context"]
            assert tuple((await session.execute(_CONTEXT)).one())[1] == str(agent.organization.id)
    finally:
        await engine.dispose()


# --------------------------------------------------------------------------------------
# Timeouts
# --------------------------------------------------------------------------------------


def test_the_timeouts_are_settings_with_sensible_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = Settings()
    assert (defaults.db_statement_timeout_s, defaults.db_idle_in_transaction_timeout_s) == (30, 60)
    monkeypatch.setenv("PLUME_DB_STATEMENT_TIMEOUT_S", "5")
    monkeypatch.setenv("PLUME_DB_IDLE_IN_TRANSACTION_TIMEOUT_S", "0")
    configured = Settings()
    assert (configured.db_statement_timeout_s, configured.db_idle_in_transaction_timeout_s) == (
        5,
        0,
    )


async def _timeouts(engine_url: str, **timeouts: float) -> tuple[str, str]:
    engine = create_engine(engine_url, pool_size=1, **timeouts)
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SET ROLE plume_app"))  # they hold after SET ROLE
            row = (
                await connection.execute(
                    text(
                        "SELECT current_setting('statement_timeout'),"
                        " current_setting('idle_in_transaction_session_timeout')"
                    )
                )
            ).one()
            return str(row[0]), str(row[1])
    finally:
        await engine.dispose()


async def test_the_services_connections_carry_the_timeouts(database_url: str) -> None:
    settings = make_settings(database_url)
    assert await _timeouts(
        database_url,
        statement_timeout_s=settings.db_statement_timeout_s,
        idle_in_transaction_timeout_s=settings.db_idle_in_transaction_timeout_s,
    ) == ("30s", "1min")
    assert await _timeouts(database_url) == ("0", "0")


async def test_an_idle_transaction_is_cut_and_a_stuck_statement_cancelled(
    database_url: str,
) -> None:
    engine = create_engine(
        database_url, pool_size=1, statement_timeout_s=0.5, idle_in_transaction_timeout_s=0.5
    )
    try:
        async with engine.connect() as connection:
            with pytest.raises(DBAPIError) as stuck:
                await connection.execute(text("SELECT pg_sleep(5)"))
            assert isinstance(stuck.value.orig, psycopg.errors.QueryCanceled)
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))  # a transaction begins, then idles
            await asyncio.sleep(1.5)
            with pytest.raises(DBAPIError) as idle:
                await connection.execute(text("SELECT 1"))
        assert isinstance(idle.value.orig, psycopg.errors.IdleInTransactionSessionTimeout)
        # The server ended that session: the pool gives a fresh connection afterwards.
        assert idle.value.connection_invalidated
        async with engine.connect() as connection:
            assert await connection.scalar(text("SELECT 1")) == 1
    finally:
        await engine.dispose()


# --------------------------------------------------------------------------------------
# SECURITY DEFINER functions and the schema
# --------------------------------------------------------------------------------------


async def test_definer_functions_search_only_pg_catalog_and_nobody_else_creates_in_public(
    db: AsyncSession,
) -> None:
    rows = (
        await db.execute(
            text(
                "SELECT p.proname, p.proconfig FROM pg_proc AS p"
                " WHERE p.pronamespace = 'public'::regnamespace AND p.prosecdef"
            )
        )
    ).all()
    paths: dict[str, Any] = {
        name: next((c for c in config or [] if c.startswith("search_path=")), None)
        for name, config in rows
    }
    assert set(paths) >= {
        "api_key_lookup",
        "api_key_revoke",
        "audit_append",
        "organization_update",
        "quota_reserve",
        "quota_settle",
        "quota_extend",
        "quota_release_expired",
        "quota_ledger_copy_limits",
    }
    assert set(paths.values()) == {"search_path=pg_catalog, pg_temp"}, paths
    for role in (APP_ROLE, "public"):
        assert not await db.scalar(
            text("SELECT has_schema_privilege(:role, 'public', 'CREATE')"), {"role": role}
        ), role
