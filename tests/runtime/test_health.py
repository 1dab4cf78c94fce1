"""The health probes: /healthz answers while the process runs, /readyz when the database is
reachable and migrated to head."""

from __future__ import annotations

import psycopg

from tests.runtime.helpers import live
from tests.support.database import UNREACHABLE_DATABASE, DatabaseServer


async def test_healthz_and_readyz_on_a_migrated_database(database_url: str) -> None:
    async with live(database_url) as http:
        health = await http.get("/healthz")
        assert health.status_code == 200
        ready = await http.get("/readyz")
        assert ready.status_code == 200, ready.text


async def test_readyz_is_503_without_migrations(database_server: DatabaseServer) -> None:
    async with live(database_server.create(migrate=False)) as http:
        assert (await http.get("/readyz")).status_code == 503
        assert (await http.get("/healthz")).status_code == 200


async def test_readyz_is_503_behind_head(database_server: DatabaseServer) -> None:
    url = database_server.create(migrate=False)
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as connection:
        connection.execute("CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY)")
        connection.execute("INSERT INTO alembic_version VALUES ('0000older')")
    async with live(url) as http:
        assert (await http.get("/readyz")).status_code == 503


async def test_readyz_is_503_when_the_database_is_down() -> None:
    async with live(UNREACHABLE_DATABASE) as http:
        assert (await http.get("/readyz")).status_code == 503
        assert (await http.get("/healthz")).status_code == 200
