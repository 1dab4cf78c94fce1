"""The test database server, and throw-away databases built by the real migrations.

The server is PLUME_TEST_DATABASE_URL if set, else a PostgreSQL on 127.0.0.1:5432 if one
answers, else an embedded one started for the session. Each pytest process (each xdist
worker) creates its own uniquely named databases and drops them at the end.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import psycopg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from plume.runtime.migrations import upgrade

LOCAL_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
# Nothing listens on port 1: connections are refused at once.
UNREACHABLE_DATABASE = "postgresql+psycopg://postgres@127.0.0.1:1/plume_nowhere"


def server_admin_url(tmp_root: Path) -> str:
    """PLUME_TEST_DATABASE_URL, else the local server if it answers, else an embedded one."""
    configured = os.environ.get("PLUME_TEST_DATABASE_URL")
    if configured:
        return configured.replace("postgresql+psycopg://", "postgresql://")
    try:
        psycopg.connect(LOCAL_SERVER, connect_timeout=2).close()
        return LOCAL_SERVER
    except psycopg.OperationalError:
        from plume.runtime.embedded import start_embedded_postgres

        url = start_embedded_postgres(tmp_root / "pgdata", database="postgres")
        return url.replace("postgresql+psycopg://", "postgresql://")


def with_database(admin_url: str, name: str) -> str:
    base, _, query = admin_url.partition("?")
    base = base.rsplit("/", 1)[0] + "/" + name
    url = base + ("?" + query if query else "")
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


class DatabaseServer:
    """Creates throw-away databases on the test server and drops them at the end."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.created: list[str] = []

    def create(self, *, migrate: bool = True) -> str:
        name = f"plume_test_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.admin_url, autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        url = with_database(self.admin_url, name)
        if migrate:
            upgrade(url)
        return url

    def drop_all(self) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as connection:
            for name in self.created:
                connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def reset_tenant_context(connection: AsyncConnection) -> None:
    """What the end of a real request transaction does to SET LOCAL values."""
    await connection.execute(text("RESET ROLE"))
    await connection.execute(
        text(
            "SELECT set_config('plume.all_organizations', '', true),"
            " set_config('plume.organizations', '', true),"
            " set_config('plume.ancestors', '', true)"
        )
    )


class SavepointSession(AsyncSession):
    """A session inside the test's transaction: its commits release savepoints.

    On close it undoes what the end of a real transaction would have undone (the role and
    scope set with SET LOCAL), so the test's own queries run with the connection's role.
    """

    async def close(self) -> None:
        await super().close()
        bind = self.bind
        if isinstance(bind, AsyncConnection) and not bind.closed:
            await reset_tenant_context(bind)
