"""Database plumbing: engine, sessions, the declarative base and the tenant context."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
import psycopg.errors
from psycopg.pq import TransactionStatus
from sqlalchemy import Connection, DateTime, MetaData, event, func, true
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import (
    DeclarativeBase,
    InstrumentedAttribute,
    Mapped,
    Session,
    SessionTransaction,
    mapped_column,
)
from sqlalchemy.sql.elements import ColumnElement, TextClause
from sqlalchemy.sql.selectable import TextualSelect

# The role every request transaction switches to; created by the first migration.
APP_ROLE = "plume_app"

NAMING_CONVENTION = {
    "ix": "%(column_0_label)s_idx",
    "uq": "%(table_name)s_%(column_0_name)s_key",
    "ck": "%(table_name)s_%(constraint_name)s_check",
    "fk": "%(table_name)s_%(column_0_name)s_fkey",
    "pk": "%(table_name)s_pkey",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class TimestampedMixin:
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )


def new_id() -> uuid.UUID:
    return uuid.uuid4()


@dataclass(frozen=True, slots=True)
class TenantScope:
    """The organisations a caller may see. Only the auth layer and system tasks build one."""

    organization_ids: frozenset[uuid.UUID]
    all_organizations: bool = False
    # The ancestors of the caller's organisation (EPCI, operator): their quotas count too.
    ancestor_ids: frozenset[uuid.UUID] = frozenset()

    @classmethod
    def everything(cls) -> TenantScope:
        return cls(organization_ids=frozenset(), all_organizations=True)

    def includes(self, organization_id: uuid.UUID) -> bool:
        return self.all_organizations or organization_id in self.organization_ids

    def clause(
        self, column: ColumnElement[uuid.UUID] | InstrumentedAttribute[uuid.UUID]
    ) -> ColumnElement[bool]:
        """The SQL filter that keeps a query inside this scope."""
        if self.all_organizations:
            return true()
        return column.in_(sorted(self.organization_ids))


# set_config('role', …, true) is SET LOCAL ROLE: one statement for the role and the scope
# (the quota reservation reads its rows in the same statement: plume.quotas.repository).
TENANT_CONTEXT = (
    f"SELECT set_config('role', '{APP_ROLE}', true) AS role,"
    " set_config('plume.all_organizations', %(all)s, true),"
    " set_config('plume.organizations', %(ids)s, true),"
    " set_config('plume.ancestors', %(ancestors)s, true),"
    " set_config('synchronous_commit', %(synchronous)s, true)"
)


def tenant_context_parameters(scope: TenantScope, *, durable: bool = True) -> dict[str, str]:
    """The parameters of TENANT_CONTEXT. `durable=False` lets the commit return before its
    WAL reaches the disk (PostgreSQL's asynchronous commit: a crash may lose the last
    fraction of a second of such transactions, never corrupt anything)."""
    return {
        "all": "on" if scope.all_organizations else "off",
        "ids": ",".join(str(i) for i in sorted(scope.organization_ids)),
        "ancestors": ",".join(str(i) for i in sorted(scope.ancestor_ids)),
        "synchronous": "on" if durable else "off",
    }


def driver_sql(statement: TextClause | TextualSelect) -> str:
    """A textual statement's SQL with psycopg's placeholders (`%(name)s`) for SQLAlchemy's
    (`:name`), to send on a connection without a session; `::` casts are left alone."""
    clause = statement.element if isinstance(statement, TextualSelect) else statement
    assert isinstance(clause, TextClause)
    return re.sub(r"(?<![:\w]):(\w+)", r"%(\1)s", clause.text)


async def driver_connection(session: AsyncSession) -> psycopg.AsyncConnection[Any]:
    """The psycopg connection under the session's current transaction."""
    return await driver_of(await session.connection())


async def driver_of(connection: AsyncConnection) -> psycopg.AsyncConnection[Any]:
    """The psycopg connection under a SQLAlchemy one."""
    raw = await connection.get_raw_connection()
    driver: psycopg.AsyncConnection[Any] = raw.driver_connection  # type: ignore[assignment]
    return driver


def pooled_engine(factory: async_sessionmaker[AsyncSession]) -> AsyncEngine | None:
    """The engine whose pool `factory`'s sessions draw from; None when they are bound to
    one connection (the tests' sessions, inside a transaction they never commit)."""
    bind = factory.kw.get("bind")
    return bind if isinstance(bind, AsyncEngine) else None


@asynccontextmanager
async def pooled_driver_connection(
    engine: AsyncEngine,
) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """A psycopg connection of `engine`'s pool, without a session, in autocommit mode: a
    statement alone is its own transaction, and a transaction of several is begun and
    committed by statements of its own, pipelined with those it holds
    (`pipelined_transaction`). Pinged when handed out, as the session's
    are; given back out of autocommit mode, its transaction rolled back if one was left
    open; a connection the database closed under it is dropped, not pooled."""
    async with engine.connect() as connection:
        driver = await driver_of(connection)
        try:
            await driver.set_autocommit(True)
            yield driver
        except BaseException as error:
            if database_unreachable(error) or not isinstance(error, Exception):
                await connection.invalidate()
                raise
            await _out_of_autocommit(connection, driver)
            raise
        await _out_of_autocommit(connection, driver)


async def _out_of_autocommit(
    connection: AsyncConnection, driver: psycopg.AsyncConnection[Any]
) -> None:
    try:
        if driver.info.transaction_status is not TransactionStatus.IDLE:
            await driver.execute("ROLLBACK")
        await driver.set_autocommit(False)
    except BaseException:
        await connection.invalidate()
        raise


@asynccontextmanager
async def pipelined_transaction(
    driver: psycopg.AsyncConnection[Any],
) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """A transaction on `driver` (a `pooled_driver_connection`) in pipeline mode: `BEGIN`,
    the statements executed in the block and `COMMIT` are sent together when it ends, and
    answered together: one round trip. Their results are read after the block. (psycopg's
    own transaction control would wait for its `BEGIN`'s answer before sending the rest,
    and send one more message after its `COMMIT`.)"""
    async with driver.pipeline():
        await driver.execute("BEGIN")
        yield driver
        await driver.execute("COMMIT")


# Where a session keeps the scope it entered (Session.info).
_SCOPE = "plume.tenant_scope"
# Set when beginning a transaction entered the kept scope: enter_tenant_context, which began
# it, does not send the same statement a second time.
_ENTERED_AT_BEGIN = "plume.entered_at_begin"


async def enter_tenant_context(session: AsyncSession, scope: TenantScope) -> None:
    """Switch the current transaction to the non-superuser role and publish the scope.

    Both settings are transaction-local, so they end with the request's transaction and
    can never leak to the next user of the pooled connection. Row-level security policies
    read them, which makes them hold even when the connection's own role is a superuser.
    The session keeps the scope: a later transaction of the same session enters it again
    (`keep_tenant_scope`).
    """
    keep_tenant_scope(session, scope)
    session.info.pop(_ENTERED_AT_BEGIN, None)
    driver = await driver_connection(session)
    if session.info.pop(_ENTERED_AT_BEGIN, False):
        return  # that began the transaction, which entered `scope` (_begin_in_kept_scope)
    await driver.execute(TENANT_CONTEXT, tenant_context_parameters(scope))


def keep_tenant_scope(session: AsyncSession, scope: TenantScope) -> None:
    """Every transaction this session begins from now on starts in `scope`'s tenant context.

    A session that entered a tenant context never runs a statement outside it: once its
    transaction has committed (a provider call commits its first transaction before the
    provider is called, and the request's session lives on until the handler returns), a
    statement on it begins a new transaction, which would otherwise run with the
    connection's own role and no scope.
    """
    session.info[_SCOPE] = scope


def system_sessions(factory: async_sessionmaker[AsyncSession]) -> async_sessionmaker[AsyncSession]:
    """A session factory like `factory` whose sessions begin every transaction in the
    system's scope (every organisation, as the application role): for background work that
    is no tenant's, such as the synthèse job queue. Work done for one tenant enters that
    tenant's context, which the session keeps instead."""
    return async_sessionmaker(
        class_=factory.class_, **{**factory.kw, "info": {_SCOPE: TenantScope.everything()}}
    )


@event.listens_for(Session, "after_begin")
def _begin_in_kept_scope(
    session: Session, transaction: SessionTransaction, connection: Connection
) -> None:
    # A savepoint is inside a transaction that entered the context already.
    scope: TenantScope | None = session.info.get(_SCOPE)
    if scope is not None and not transaction.nested:
        connection.exec_driver_sql(TENANT_CONTEXT, tenant_context_parameters(scope))
        session.info[_ENTERED_AT_BEGIN] = True


def include_in_autogenerate(
    item: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    """For Alembic's autogenerate: a model mapped to a view (`info={"is_view": True}`) is
    the migrations' SQL, not a table to create."""
    info = getattr(item, "info", {})
    return not (type_ == "table" and info.get("is_view"))


def create_engine(
    url: str,
    *,
    pool_size: int = 10,
    pool_timeout: float = 5.0,
    statement_timeout_s: float = 0,
    idle_in_transaction_timeout_s: float = 0,
) -> AsyncEngine:
    """The engine; a timeout of 0 is none. The timeouts are the connection's own settings
    (connection options): they hold whatever role the transaction then switches to, which
    `ALTER ROLE … SET` would not (settings of a role apply at login, not on SET ROLE)."""
    connect_args: dict[str, Any] = {"connect_timeout": 5}
    options = [
        f"-c {name}={round(seconds * 1000)}"
        for name, seconds in (
            ("statement_timeout", statement_timeout_s),
            ("idle_in_transaction_session_timeout", idle_in_transaction_timeout_s),
        )
        if seconds > 0
    ]
    if options:
        connect_args["options"] = " ".join(options)
    engine = create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_timeout=pool_timeout,
        # Statement parameters carry prompts and documents: never in exception messages.
        hide_parameters=True,
        connect_args=connect_args,
    )
    event.listen(engine.sync_engine, "checkout", _checking(engine.sync_engine.dialect))
    return engine


# Set while a connection is taken whose first statement checks it (`unchecked`).
_UNCHECKED: ContextVar[bool] = ContextVar("plume.db.unchecked", default=False)


def _checking(dialect: Dialect) -> Callable[[Any, Any, Any], None]:
    """The pool's check of a connection it hands out, what `pool_pre_ping` does: a round
    trip, so that a connection the database closed (a restart, a failover) is replaced —
    with every connection opened before it — before a request uses it. Skipped for a
    connection taken `unchecked`."""

    def check(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        if _UNCHECKED.get():
            return
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as error:
            if dialect.is_disconnect(error, dbapi_connection, None):
                raise sa_exc.InvalidatePoolError() from error
            raise

    return check


@contextmanager
def unchecked() -> Iterator[None]:
    """Connections taken in this block are not checked by a round trip of their own: the
    caller's first statement is the check, and the caller takes another connection (checked)
    if it fails because the database closed the first (`database_unreachable`)."""
    token = _UNCHECKED.set(True)
    try:
        yield
    finally:
        _UNCHECKED.reset(token)


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


# Raised by the server when it goes away under a connection (57P01-57P03).
_SHUTDOWNS = (
    psycopg.errors.AdminShutdown,
    psycopg.errors.CrashShutdown,
    psycopg.errors.CannotConnectNow,
)


def database_unreachable(error: BaseException) -> bool:
    """The database went away (or could not be reached): what was sent may or may not have
    been committed. Not a query's own error."""
    if isinstance(error, sa_exc.TimeoutError):  # pool exhausted or connect timeout
        return True
    if isinstance(error, psycopg.OperationalError):
        # From the driver itself (the hot path's statements): a lost or closed connection
        # is a bare OperationalError or a connection-class (08) error.
        return (
            type(error) is psycopg.OperationalError
            or isinstance(error, _SHUTDOWNS)
            or (error.sqlstate or "").startswith("08")
        )
    if isinstance(error, sa_exc.DBAPIError):
        if error.connection_invalidated:
            return True
        # A failed connection is a bare OperationalError; its subclasses are query errors.
        return type(error.orig) is psycopg.OperationalError
    return False
